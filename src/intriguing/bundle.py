"""Publishing computed results and fetching them on request: a bundle of cached results, checked by sha256.

A bundle is a folder (served as is over HTTP, or read from disk) holding

- ``bundle.json``: the bundle's :data:`BUNDLE_FORMAT`, the profile, and one entry per result: its
  path in the bundle, the cache's kind, name and configuration (its cache key), and the chapters
  whose build asked for it (from the build's ``needs.json``, see :func:`needs_by_chapter`);
- ``registry.txt``: pooch's registry, one ``path sha256`` line per result file;
- one ``<kind>--<cache file stem>.safetensors`` per result (flat, as a release's assets are): its
  tensors as safetensors (no pickle),
  everything else as JSON in the file's metadata.

:func:`pull` fetches the results that the named chapters asked for and the cache lacks, each
checked against the registry (through ``pooch`` for URLs), and stores them in the cache under their
keys, so the chapters load them as if they had computed them. Nothing is downloaded unless asked.
An entry whose key the current code would not ask for (another code version's) is reported, never
stored under a key the code uses; a bundle of another format is refused whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from torch import Tensor

from . import cache
from .data import file_sha256

__all__ = ["BUNDLE_FORMAT", "NEEDS_VAR", "PRECOMPUTED_VAR", "BundleError", "make_bundle", "needs_by_chapter", "pull",
           "read_result", "write_result"]

BUNDLE_FORMAT = 1
"""The layout of a bundle and of its result files; a bundle of another format is refused."""
NEEDS_VAR = cache.NEEDS_VAR
PRECOMPUTED_VAR = "INTRIGUING_PRECOMPUTED"
"""A bundle's URL or folder: ``python -m intriguing build`` pulls from it before it computes."""
DEFAULT_KINDS = ("networks",)


class BundleError(ValueError):
    """A bundle that cannot be used: another format, a missing or damaged file."""


def _split(obj: Any, prefix: str, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError(f"only string keys can be bundled, at {prefix!r}")
        return {"__dict__": {k: _split(v, f"{prefix}/{k}", tensors) for k, v in obj.items()}}
    if isinstance(obj, (list, tuple)):
        return [_split(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot bundle a {type(obj).__name__} at {prefix!r}")


def _join(skeleton: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(skeleton, dict) and "__tensor__" in skeleton:
        return tensors[skeleton["__tensor__"]]
    if isinstance(skeleton, dict):
        return {k: _join(v, tensors) for k, v in skeleton["__dict__"].items()}
    if isinstance(skeleton, list):
        return [_join(v, tensors) for v in skeleton]
    return skeleton


def write_result(obj: Any, path: Path) -> None:
    """Write one cached result (nested dicts and lists of tensors, numbers and strings) as safetensors."""
    from safetensors.torch import save_file

    tensors: dict[str, Tensor] = {}
    skeleton = _split(obj, "", tensors)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"skeleton": json.dumps(skeleton), "format": str(BUNDLE_FORMAT)})


def read_result(path: Path) -> Any:
    """The result that :func:`write_result` wrote to ``path``.

    Raises:
        BundleError: the file is not a result file of this :data:`BUNDLE_FORMAT`.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as err:
        raise BundleError(f"{path} is not a readable result file ({err})") from err
    if metadata.get("format") != str(BUNDLE_FORMAT):
        raise BundleError(f"{path} has bundle format {metadata.get('format')!r}; this code reads {BUNDLE_FORMAT}")
    return _join(json.loads(metadata["skeleton"]), tensors)


def needs_by_chapter(events: Path) -> dict[str, list[str]]:
    """Chapter -> the cached results (``kind/file``) it asked for, from the log that :func:`intriguing.cache.lookup`
    writes where ``$INTRIGUING_NEEDS`` names it during a build."""
    needs: dict[str, set[str]] = {}
    for line in events.read_text(encoding="utf-8").splitlines() if events.exists() else []:
        entry = json.loads(line)
        needs.setdefault(entry["chapter"], set()).add(f"{entry['kind']}/{entry['file']}")
    return {chapter: sorted(files) for chapter, files in needs.items()}


def make_bundle(out: Path, profile: str, kinds: Iterable[str] = DEFAULT_KINDS,
                needs: dict[str, list[str]] | None = None,
                belongs: Callable[[dict[str, Any]], bool] = lambda config: True) -> dict[str, Any]:
    """Write a bundle of the cache's results of ``kinds`` into the folder ``out``.

    Args:
        out: the bundle's folder (created; files of an earlier bundle there are replaced).
        profile: the profile the results were computed for (recorded; :func:`pull` checks it).
        kinds: the cache's kinds to bundle, e.g. ``("networks",)``.
        needs: chapter -> ``kind/file`` it asked for (:func:`needs_by_chapter`), to record which
            chapters need each result.
        belongs: whether a cached result's configuration belongs to ``profile``.

    Returns:
        The bundle's ``bundle.json`` content; its ``bytes`` is the bundle's size.
    """
    chapters: dict[str, list[str]] = {}
    for chapter, files in (needs or {}).items():
        for file in files:
            chapters.setdefault(file, []).append(chapter)
    entries, lines, size = [], [], 0
    for kind in kinds:
        if kind not in cache.kinds():
            raise BundleError(f"no cached kind {kind!r} to bundle; there are: {', '.join(cache.kinds()) or 'none'}")
        for entry in cache.index(kind):
            if not belongs(entry["config"]):
                continue
            stored = cache.cache_dir() / kind / entry["file"]
            path = f"{kind}--{Path(entry['file']).stem}.safetensors"  # flat: a release's assets have no folders
            write_result(cache.load(stored), out / path)
            digest = file_sha256(out / path)
            size += (out / path).stat().st_size
            lines.append(f"{path} {digest}")
            entries.append({"path": path, "kind": kind, "file": entry["file"], "name": entry["name"],
                            "config": entry["config"], "chapters": sorted(chapters.get(f"{kind}/{entry['file']}", []))})
    manifest = {"format": BUNDLE_FORMAT, "profile": profile, "bytes": size, "chapters_recorded": needs is not None,
                "entries": entries}
    cache.atomic_write_text("\n".join(lines) + "\n", out / "registry.txt")
    cache.atomic_write_text(json.dumps(manifest, indent=1, default=str) + "\n", out / "bundle.json")
    return manifest


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _fetch_index(source: str, name: str, into: Path) -> Path:
    if _is_url(source):
        import pooch

        return Path(pooch.retrieve(f"{source.rstrip('/')}/{name}", known_hash=None, fname=name, path=str(into),
                                   progressbar=False))
    path = Path(source) / name
    if not path.is_file():
        raise BundleError(f"the bundle at {source} has no {name}")
    return path


def pull(source: str | None, profile: str, chapters: Iterable[str] = (), *,
         asked_for: Callable[[str, str, dict[str, Any]], bool] = lambda kind, name, config: True) -> dict[str, list[str]]:
    """Fetch from the bundle at ``source`` the results that ``chapters`` (default: every chapter) asked
    for and the cache lacks, check each against the registry's sha256, and store it in the cache.

    Args:
        source: the bundle's URL (http or https) or folder; None: ``$INTRIGUING_PRECOMPUTED``.
        profile: the profile whose results are wanted; the bundle must be of it.
        chapters: only the results these chapters asked for (all, where the bundle records no
            chapters: one made without its build's ``needs.json``).
        asked_for: whether the current code would ask for a result of (kind, name, config).

    Returns:
        ``fetched``, ``present`` (already in the cache) and ``not asked for`` (entries whose key
        the current code would not ask for: another version's), each a list of bundle paths.

    Raises:
        BundleError: no source, a bundle of another format or profile, or a file that is missing
            or whose sha256 differs from the registry's (the download is deleted; nothing of it
            enters the cache).
    """
    import pooch

    pooch.get_logger().setLevel("WARNING")  # not a line per file: pull reports what it fetched
    source = source or os.environ.get(PRECOMPUTED_VAR)
    if not source:
        raise BundleError(f"no bundle to pull from: give --from URL_OR_FOLDER or set ${PRECOMPUTED_VAR}")
    cache.check_writable("networks")
    downloads = Path(tempfile.mkdtemp(prefix=".pull-", dir=cache.cache_dir()))
    try:
        manifest = json.loads(_fetch_index(source, "bundle.json", downloads).read_text(encoding="utf-8"))
        if manifest.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"the bundle at {source} has format {manifest.get('format')!r}; this code reads "
                              f"{BUNDLE_FORMAT}: use a bundle made by this version")
        if manifest.get("profile") != profile:
            raise BundleError(f"the bundle at {source} holds profile {manifest.get('profile')!r}, not {profile!r}")
        registry = dict(line.split() for line in
                        _fetch_index(source, "registry.txt", downloads).read_text(encoding="utf-8").splitlines() if line)
        # A bundle made without the build's needs.json cannot tell chapters apart: all of it is wanted.
        wanted = set(chapters) if manifest.get("chapters_recorded", True) else set()
        found: dict[str, list[str]] = {"fetched": [], "present": [], "not asked for": []}
        for entry in manifest["entries"]:
            if wanted and not wanted & set(entry["chapters"]):
                continue
            if not asked_for(entry["kind"], entry["name"], entry["config"]):
                found["not asked for"].append(entry["path"])
                continue
            if cache.cache_path(entry["kind"], entry["name"], entry["config"]).exists():
                found["present"].append(entry["path"])
                continue
            if entry["path"] not in registry:
                raise BundleError(f"the bundle's registry has no sha256 for {entry['path']}")
            local = _fetch_file(source, entry["path"], registry[entry["path"]], downloads)
            cache.store(entry["kind"], entry["name"], entry["config"], read_result(local))
            local.unlink()
            found["fetched"].append(entry["path"])
        return found
    finally:
        shutil.rmtree(downloads, ignore_errors=True)


def _fetch_file(source: str, path: str, sha256: str, into: Path) -> Path:
    """One result file, checked against its sha256; a mismatch deletes it and names it."""
    import pooch

    if _is_url(source):
        fetcher = pooch.create(path=str(into), base_url=source.rstrip("/") + "/", registry={path: f"sha256:{sha256}"},
                               retry_if_failed=2)
        try:
            return Path(fetcher.fetch(path, progressbar=False))
        except ValueError as err:  # pooch deletes a download whose hash differs
            raise BundleError(f"{path} from {source} is damaged: its sha256 differs from the registry's ({err})") from err
        except Exception as err:
            raise BundleError(f"cannot fetch {path} from {source} ({err})") from err
    origin = Path(source) / path
    if not origin.is_file():
        raise BundleError(f"the bundle at {source} has no {path}")
    local = into / path
    shutil.copyfile(origin, local)
    if file_sha256(local) != sha256:
        local.unlink()
        raise BundleError(f"{path} in {source} is damaged: its sha256 differs from the registry's")
    return local
