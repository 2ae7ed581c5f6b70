"""Bundles of computed results: made from the tiny profile's cache, served on the loopback interface,
pulled into an empty cache; damaged, missing and foreign files refused by name."""

import functools
import http.server
import json
import shutil
import threading

import pytest
import torch

from intriguing import bundle, cache, cli, train
from intriguing.chapters import networks


def test_a_result_round_trips_through_safetensors(tmp_path):
    record = {"state_dict": {"w": torch.arange(6.0).view(2, 3), "mask": torch.tensor([True, False])},
              "stages": {"lbfgs": {"iterations": 3, "stop": "window", "losses": [1.5, float("inf")], "seconds": 0.25}},
              "empty": [], "none": None}
    bundle.write_result(record, tmp_path / "r.safetensors")
    back = bundle.read_result(tmp_path / "r.safetensors")
    assert torch.equal(back["state_dict"]["w"], record["state_dict"]["w"])
    assert torch.equal(back["state_dict"]["mask"], record["state_dict"]["mask"])
    assert back["stages"] == record["stages"] and back["empty"] == [] and back["none"] is None
    assert b"pickle" not in (tmp_path / "r.safetensors").read_bytes()[:0]  # safetensors: a header and raw bytes


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The tiny profile's networks chapter computed once, with the results it asked for, its networks bundled."""
    from conftest import TINY

    from intriguing import profiles

    root = tmp_path_factory.mktemp("published")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(profiles.PROFILES, "tiny", TINY)
        patch.setenv("INTRIGUING_CACHE", str(root / "cache"))
        patch.setenv(cache.NEEDS_VAR, str(root / "needs.jsonl"))
        patch.setenv("INTRIGUING_CHAPTER", "networks")
        errors = networks.table1_errors(TINY)
        patch.delenv(cache.NEEDS_VAR)
        manifest = bundle.make_bundle(root / "bundle", "tiny", needs=bundle.needs_by_chapter(root / "needs.jsonl"))
    assert len(manifest["entries"]) == 6 and all(e["chapters"] == ["networks"] for e in manifest["entries"])
    return root / "bundle", errors


@pytest.fixture
def published(built, tmp_path, tiny):
    """A copy of the bundle, served on 127.0.0.1; the test's own cache is empty."""
    out = tmp_path / "bundle"
    shutil.copytree(built[0], out)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", out, built[1]
    server.shutdown()


def _no_training(*args, **kwargs):
    raise AssertionError("a pulled network was trained again")


def test_pulling_a_bundle_into_an_empty_cache_trains_nothing_and_gives_the_same_numbers(published, monkeypatch, tiny):
    url, _, errors = published
    found = cli.pull(url, "tiny", ["networks"])
    assert len(found["fetched"]) == 6 and found["not asked for"] == [], found
    monkeypatch.setattr(train, "fit", _no_training)
    monkeypatch.setattr("intriguing.artifacts.fit", _no_training)
    assert networks.table1_errors(tiny).equals(errors)
    assert cli.pull(url, "tiny", ["networks"])["present"] and not cli.pull(url, "tiny", ["units"])["fetched"]


def test_a_damaged_file_is_refused_by_name_and_nothing_enters_the_cache(published, tiny):
    url, out, _ = published
    victim = out / json.loads((out / "bundle.json").read_text())["entries"][0]["path"]
    data = bytearray(victim.read_bytes())
    data[-8:] = bytes(8)
    victim.write_bytes(bytes(data))
    with pytest.raises(bundle.BundleError, match=f"{victim.relative_to(out)} from {url} is damaged"):
        cli.pull(url, "tiny", [])
    root = cache.cache_dir()
    assert not list(root.rglob("*.pt")) and not list(root.rglob("*.safetensors")) and not list(root.glob(".pull-*"))


def test_a_missing_file_is_named(published, tiny):
    url, out, _ = published
    path = json.loads((out / "bundle.json").read_text())["entries"][-1]["path"]
    (out / path).unlink()
    with pytest.raises(bundle.BundleError, match=f"cannot fetch {path}"):
        cli.pull(url, "tiny", [])
    with pytest.raises(bundle.BundleError, match=f"has no {path}"):
        cli.pull(str(out), "tiny", [])  # a folder as the source


def test_a_bundle_of_another_format_or_version_is_refused_or_reported(published, tiny):
    url, out, _ = published
    manifest = json.loads((out / "bundle.json").read_text())
    stale = json.loads(json.dumps(manifest["entries"][0]))
    stale["config"]["format"] = 1  # a network trained by an older version of the code
    stale["path"] = "networks--stale.safetensors"
    (out / "bundle.json").write_text(json.dumps({**manifest, "entries": [*manifest["entries"], stale]}))
    found = cli.pull(url, "tiny", [])
    assert found["not asked for"] == ["networks--stale.safetensors"] and len(found["fetched"]) == 6
    (out / "bundle.json").write_text(json.dumps({**manifest, "format": bundle.BUNDLE_FORMAT + 1}))
    with pytest.raises(bundle.BundleError, match="has format 2; this code reads 1"):
        cli.pull(url, "tiny", [])
    with pytest.raises(bundle.BundleError, match="no bundle to pull from"):
        cli.pull(None, "tiny", [])


def test_the_cli_bundles_and_pulls(published, capsys, tiny):
    url, out, _ = published
    assert cli.main(["cache", "pull", "--from", url, "--profile", "tiny", "networks"]) == 0
    assert "fetched 6" in capsys.readouterr().out
    assert cli.main(["cache", "bundle", "--profile", "tiny", str(out / "again")]) == 0
    assert "bundled 6 result(s)" in capsys.readouterr().out


def test_a_bundle_that_records_no_chapters_gives_everything_to_any_chapter(built, tmp_path, tiny):
    out = tmp_path / "bundle"
    shutil.copytree(built[0], out)
    manifest = json.loads((out / "bundle.json").read_text())
    (out / "bundle.json").write_text(json.dumps({**manifest, "chapters_recorded": False}))
    assert len(cli.pull(str(out), "tiny", ["units"])["fetched"]) == 6
