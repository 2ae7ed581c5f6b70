import pytest

from intriguing import profiles
from intriguing.attacks import SearchSettings
from intriguing.profiles import Profile

TINY = Profile(
    name="tiny",
    train_subset=200,
    lbfgs_iterations={"softmax": 30, "mlp": 30, "autoencoder": 20, "ae_softmax": 30},
    conv_epochs=1,
    attack_examples=12,
    min_target_examples=4,
    peer_examples=6,
    scipy_examples=2,
    error_tolerance_pp=100.0,
    distortion_tolerance=10.0,
    transfer_tolerance_pp=100.0,
    imagenet_examples=1,
    imagenet_search=SearchSettings(c_steps=1, max_iter=2, network_precision="float32"),
)
"""The tests' profile: networks that train in seconds on 200 images, a dozen attacked images."""


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own empty result cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("INTRIGUING_CACHE", str(cache))
    return cache


@pytest.fixture
def tiny(monkeypatch) -> Profile:
    """:data:`TINY`, also registered by name, so that ``get_profile("tiny")`` finds it."""
    monkeypatch.setitem(profiles.PROFILES, "tiny", TINY)
    return TINY
