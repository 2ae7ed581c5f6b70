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


def _stored(kind="networks", config=None):
    config = config or {"n": 1}
    cache.store(kind, "net", config, {"w": torch.arange(4096.0)})
    return cache.cache_path(kind, "net", config)


def test_clear_deletes_only_what_the_cache_stored(isolated_cache):
    path = _stored()
    idx = isolated_cache / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte"  # the user's own files
    idx.parent.mkdir(parents=True)
    idx.write_bytes(b"mine")
    foreign = path.parent / "notes.txt"
    foreign.write_text("mine too")
    stray = path.parent / f".{path.name}.12345.tmp"  # a killed write's
    stray.write_bytes(b"half")
    assert cache.stray_files() == [stray]
    assert cache.clear() == 1
    assert not path.exists() and not stray.exists() and not (path.parent / cache.INDEX).exists()
    assert idx.read_bytes() == b"mine" and foreign.read_text() == "mine too"
    assert cache.kinds() == []


def test_clear_refuses_a_git_checkout_and_an_empty_root(tmp_path, monkeypatch):
    clone = tmp_path / "clone"
    for folder in (".git", "src", "book"):
        (clone / folder).mkdir(parents=True)
    monkeypatch.setenv("INTRIGUING_CACHE", str(clone))
    with pytest.raises(ValueError, match="inside the git checkout"):
        cache.clear()
    assert sorted(p.name for p in clone.iterdir()) == [".git", "book", "src"]
    monkeypatch.setenv("INTRIGUING_CACHE", "")
    with pytest.raises(ValueError, match="set but empty"):
        cache.clear()
    # A cache the book made inside a checkout (the tests' own, in _build/test-cache) carries its tag: clearable.
    monkeypatch.setenv("INTRIGUING_CACHE", str(clone / "_build" / "test-cache"))
    _stored()
    assert cache.clear() == 1 and (clone / ".git").is_dir()


def test_a_damaged_file_is_reported_by_name_and_recomputed(isolated_cache):
    path = _stored()
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 4096] = bytes(4096)  # 4 KiB overwritten: torch.load alone would not notice
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=f"ignoring unreadable cache file {path}.*damaged"):
        again = cache.cached("networks", "net", {"n": 1}, lambda: {"w": torch.ones(2)})
    assert torch.equal(again["w"], torch.ones(2))
    assert torch.equal(cache.lookup("networks", "net", {"n": 1})["w"], torch.ones(2))  # and stored anew


def test_an_unwritable_cache_is_found_before_the_computation(tmp_path, monkeypatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("INTRIGUING_CACHE", str(blocked / "cache"))
    computed = []
    with pytest.raises(PermissionError, match="the result cache cannot write to"):
        cache.cached("networks", "net", {}, lambda: computed.append(1))
    assert computed == []


WRITER = """
import torch
from intriguing import cache
for i in range(40):
    cache.store("attacks", "piece", {"i": i % 3}, {"x": torch.zeros(20000)})
"""


def test_a_clear_while_another_process_writes_crashes_neither(isolated_cache):
    import subprocess
    import sys

    writer = subprocess.Popen([sys.executable, "-c", WRITER], stderr=subprocess.PIPE, text=True)
    while writer.poll() is None:
        cache.clear()
    assert writer.returncode == 0, writer.stderr.read()
