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
    stale["path"] = bundle.bundle_path("networks", stale["name"], stale["config"])
    (out / "bundle.json").write_text(json.dumps({**manifest, "entries": [*manifest["entries"], stale]}))
    found = cli.pull(url, "tiny", [])
    assert found["not asked for"] == [stale["path"]] and len(found["fetched"]) == 6
    (out / "bundle.json").write_text(json.dumps({**manifest, "format": bundle.BUNDLE_FORMAT + 1}))
    with pytest.raises(bundle.BundleError, match=f"has format {bundle.BUNDLE_FORMAT + 1}; this code reads "
                                                 f"{bundle.BUNDLE_FORMAT}"):
        cli.pull(url, "tiny", [])
    with pytest.raises(bundle.BundleError, match="no bundle to pull from"):
        cli.pull(None, "tiny", [])


def test_the_cli_bundles_and_pulls(published, capsys, tiny):
    url, out, _ = published
    assert cli.main(["cache", "pull", "--from", url, "--profile", "tiny", "--dry-run", "networks"]) == 0
    size = sum(e["bytes"] for e in json.loads((out / "bundle.json").read_text())["entries"])
    assert f"would fetch 6 ({cli._size(size)})" in capsys.readouterr().out and not cache.kinds()
    assert cli.main(["cache", "pull", "--from", url, "--profile", "tiny", "networks"]) == 0
    assert f"fetched 6 ({cli._size(size)})" in capsys.readouterr().out
    assert cli.main(["cache", "bundle", "--profile", "tiny", str(out / "again")]) == 0
    assert "bundled 6 result(s)" in capsys.readouterr().out


def test_a_bundle_that_records_no_chapters_gives_everything_to_any_chapter(built, tmp_path, tiny):
    out = tmp_path / "bundle"
    shutil.copytree(built[0], out)
    manifest = json.loads((out / "bundle.json").read_text())
    (out / "bundle.json").write_text(json.dumps({**manifest, "chapters_recorded": False}))
    assert len(cli.pull(str(out), "tiny", ["units"])["fetched"]) == 6


# A hostile bundle: whatever bundle.json and registry.txt say, pull touches nothing outside the cache.

def _hostile(out, path, payload=b"overwritten by the bundle"):
    """Rewrite the bundle at ``out`` so that its first entry and its registry line name ``path``, with the
    size and sha256 of ``payload``: what an attacker who controls the release would publish."""
    import hashlib

    manifest = json.loads((out / "bundle.json").read_text())
    old = manifest["entries"][0]["path"]
    manifest["entries"][0].update(path=path, bytes=len(payload))
    (out / "bundle.json").write_text(json.dumps(manifest))
    lines = [f"{path} {hashlib.sha256(payload).hexdigest()}" if line.split()[0] == old else line
             for line in (out / "registry.txt").read_text().splitlines()]
    (out / "registry.txt").write_text("\n".join(lines) + "\n")


def _untouched(victim):
    root = cache.cache_dir()
    assert victim.read_text() == "the reader's own file"
    assert not list(root.rglob("*.pt")) and not list(root.glob(".pull-*"))


@pytest.mark.parametrize("where", ["folder", "http"])
@pytest.mark.parametrize("climb", ["../../victim.txt", "../victim.txt", "sub/../../../victim.txt", "absolute"])
def test_an_entry_path_that_leaves_the_download_folder_is_refused_and_writes_nothing(published, tmp_path, where,
                                                                                     climb, tiny):
    url, out, _ = published
    victim = tmp_path / "victim.txt"  # the cache is tmp_path/cache, its downloads tmp_path/cache/.pull-*
    victim.write_text("the reader's own file")
    _hostile(out, str(victim) if climb == "absolute" else climb)
    with pytest.raises(bundle.BundleError, match="is malformed: entry 0's path .* is not the file name its key gives"):
        cli.pull(url if where == "http" else str(out), "tiny", [])
    _untouched(victim)


@pytest.mark.parametrize("kind", ["../..", "checkpoints", "networks/../..", "Networks", 3])
def test_a_foreign_kind_is_refused(published, tmp_path, kind, tiny):
    url, out, _ = published
    victim = tmp_path / "victim.txt"
    victim.write_text("the reader's own file")
    manifest = json.loads((out / "bundle.json").read_text())
    manifest["entries"][0]["kind"] = kind
    (out / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(bundle.BundleError, match=f"entry 0 has kind {kind!r}, not one of the cache's"):
        cli.pull(url, "tiny", [])
    _untouched(victim)


def test_a_registry_line_that_climbs_or_is_malformed_is_refused(published, tmp_path, tiny):
    url, out, _ = published
    victim = tmp_path / "victim.txt"
    victim.write_text("the reader's own file")
    good = (out / "registry.txt").read_text()
    for bad in ["../../victim.txt " + "0" * 64, "/etc/passwd " + "0" * 64, "networks--x.safetensors not-a-sha256",
                "one-field-only", good.splitlines()[0]]:  # the last: a repeated line
        (out / "registry.txt").write_text(good + bad + "\n")
        with pytest.raises(bundle.BundleError, match="registry.txt line 7 is not a new 'file-name sha256' pair"):
            cli.pull(str(out), "tiny", [])
    _untouched(victim)


@pytest.mark.parametrize("where", ["folder", "http"])
def test_a_file_larger_than_recorded_is_refused_while_downloading(published, where, tiny):
    url, out, _ = published
    manifest = json.loads((out / "bundle.json").read_text())
    manifest["entries"][0]["bytes"] = 100  # the file is larger: a download must stop at 100 bytes
    (out / "bundle.json").write_text(json.dumps(manifest))
    path = manifest["entries"][0]["path"]
    with pytest.raises(bundle.BundleError, match=f"{path} from .* is larger than recorded"):
        cli.pull(url if where == "http" else str(out), "tiny", [])
    root = cache.cache_dir()
    assert not list(root.rglob("*.pt")) and not list(root.glob(".pull-*"))


@pytest.mark.parametrize("where", ["folder", "http"])
@pytest.mark.parametrize("text, message", [
    ("{not json", "bundle.json is not JSON"),
    ("[]", "bundle.json is not a JSON object"),
    ('{"format": 2, "profile": "tiny"}', "needs a profile .* and entries"),
    ('{"format": 2, "profile": "tiny", "entries": ["x"]}', "entry 0 is not a JSON object"),
])
def test_a_broken_manifest_gets_an_error_that_names_it(published, where, text, message, tiny):
    url, out, _ = published
    (out / "bundle.json").write_text(text)
    with pytest.raises(bundle.BundleError, match=message):
        cli.pull(url if where == "http" else str(out), "tiny", [])
    assert not list(cache.cache_dir().glob(".pull-*"))


@pytest.mark.parametrize("field, value, message", [
    ("bytes", None, "records None bytes"), ("bytes", -1, "records -1 bytes"), ("bytes", True, "records True bytes"),
    ("config", "x", "needs a name .* and a config"), ("name", "", "needs a name"),
    ("chapters", "networks", "needs its chapters as a list of strings"),
])
def test_an_entry_missing_what_pull_checks_is_refused(published, field, value, message, tiny):
    _, out, _ = published
    manifest = json.loads((out / "bundle.json").read_text())
    manifest["entries"][2][field] = value
    (out / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(bundle.BundleError, match=f"entry 2 {message}" if field != "bytes" else message):
        cli.pull(str(out), "tiny", [])
    assert not list(cache.cache_dir().rglob("*.pt"))


def test_a_symlink_in_a_bundle_folder_is_not_followed(published, tmp_path, tiny):
    _, out, _ = published
    path = json.loads((out / "bundle.json").read_text())["entries"][0]["path"]
    moved = tmp_path / "elsewhere.safetensors"
    (out / path).rename(moved)
    (out / path).symlink_to(moved)
    with pytest.raises(bundle.BundleError, match=f"has no {path}"):
        cli.pull(str(out), "tiny", [])


def test_every_kind_the_cache_holds_is_bundled_and_a_bundle_over_a_releases_asset_limit_is_refused(built, tmp_path,
                                                                                                   monkeypatch, tiny):
    shutil.copytree(built[0].parent / "cache", tmp_path / "cache-copy")
    monkeypatch.setenv("INTRIGUING_CACHE", str(tmp_path / "cache-copy"))
    cache.store("attacks", "softmax1", {"network": {"made": "by hand"}, "train_subset": tiny.train_subset},
                {"adversarial": torch.zeros(2, 3)})
    manifest = cli.make_bundle("tiny", ["all"], tmp_path / "all", tmp_path / "no-needs.json")
    assert {e["kind"] for e in manifest["entries"]} == {"networks", "attacks"} and len(manifest["entries"]) == 7
    monkeypatch.setattr(bundle, "MAX_FILES", 8)
    with pytest.raises(bundle.BundleError, match="7 results and the two index files exceed a release's 8 assets"):
        cli.make_bundle("tiny", ["all"], tmp_path / "again", tmp_path / "no-needs.json")
    with pytest.raises(bundle.BundleError, match="'checkpoints' is not a kind of result"):
        cli.make_bundle("tiny", ["checkpoints"], tmp_path / "again", tmp_path / "no-needs.json")
