import pytest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own empty result cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("INTRIGUING_CACHE", str(cache))
    return cache
