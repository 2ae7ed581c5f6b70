import pytest
import torch

from intriguing import cache


def test_cached_computes_once_and_keys_by_config():
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.arange(3)}

    a = cache.cached("kind", "name", {"n": 1}, compute)
    b = cache.cached("kind", "name", {"n": 1}, compute)
    cache.cached("kind", "name", {"n": 2}, compute)
    assert len(calls) == 2 and torch.equal(a["x"], b["x"])


def test_interrupted_write_leaves_no_file_behind(monkeypatch):
    path = cache.cache_path("kind", "name", {"n": 1})

    def dies_halfway(obj, f):
        f.write(b"half a file")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(torch, "save", dies_halfway)
        cache.atomic_save({"x": 1}, path)
    assert not path.exists()
    assert list(path.parent.iterdir()) == []
    # The next run computes and stores the result as if nothing had happened.
    assert cache.cached("kind", "name", {"n": 1}, lambda: {"x": 2}) == {"x": 2}
    assert cache.load(path) == {"x": 2}


def test_unreadable_file_is_reported_and_recomputed():
    path = cache.cache_path("kind", "name", {"n": 1})
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="ignoring unreadable cache file"):
        assert cache.cached("kind", "name", {"n": 1}, lambda: {"x": 3}) == {"x": 3}
    assert cache.load(path) == {"x": 3}


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("INTRIGUING_CACHE", str(tmp_path / "elsewhere"))
    assert cache.cache_path("k", "M1'", {}).parent == tmp_path / "elsewhere" / "k"
    assert "'" not in cache.cache_path("k", "M1'", {}).name


def test_lookup_says_missing_until_a_result_is_stored(isolated_cache):
    config = {"seed": 3}
    assert cache.lookup("kind", "name", config) is cache.MISSING
    cache.store("kind", "name", config, {"x": torch.arange(3)})
    assert torch.equal(cache.lookup("kind", "name", config)["x"], torch.arange(3))
    assert cache.lookup("kind", "name", {"seed": 4}) is cache.MISSING
    assert [entry["config"] for entry in cache.index("kind")] == [config]
