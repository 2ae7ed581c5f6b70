import pytest
import torch

from intriguing import experiments
from intriguing.profiles import Profile

TINY = Profile(name="tiny", train_subset=200,
               lbfgs_iterations={"softmax": 30, "mlp": 30, "autoencoder": 5, "ae_softmax": 5},
               attack_examples=12, min_target_examples=4, peer_examples=6, scipy_examples=2)


def test_adversarial_sets_are_built_in_cached_pieces(monkeypatch):
    monkeypatch.setattr(experiments, "ATTACK_CHUNK", 5)
    images, result = experiments.adversarial_set("softmax1", "train", TINY)
    assert len(images) == len(result.success) == 12
    assert result.success.all()
    # A killed run keeps its finished pieces: the second call attacks nothing.
    monkeypatch.setattr(experiments, "min_distortion_attack", lambda *a, **k: pytest.fail("attacked again"))
    _, again = experiments.adversarial_set("softmax1", "train", TINY)
    assert torch.equal(again.adversarial, result.adversarial)


def test_min_over_targets_is_no_larger_than_random_targets():
    _, random = experiments.adversarial_set("softmax2", "train", TINY)
    minimum = experiments.min_over_targets("softmax2", TINY)
    assert minimum.success.all() and len(minimum.success) == 4
    assert (minimum.distortion <= random.distortion[:4] + 1e-6).all()


def test_gaussian_noise_is_seeded_and_unclipped_unless_asked():
    images = torch.full((200, 1, 28, 28), 0.5)
    noisy = experiments.gaussian_noise(images, 0.3, seed=0)
    assert torch.equal(noisy, experiments.gaussian_noise(images, 0.3, seed=0))
    assert (noisy - images).pow(2).mean().sqrt().item() == pytest.approx(0.3, rel=0.01)  # stddev = RMS
    clipped = experiments.gaussian_noise(images, 1.0, seed=0, clip=True)
    assert clipped.min() == 0 and clipped.max() == 1


def test_unknown_split():
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        experiments.attacked_images("valid", TINY)
