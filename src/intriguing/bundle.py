"""Publishing computed results and fetching them on request: a bundle of cached results, checked by sha256.

A bundle is a folder (served as is over HTTP, or read from disk) holding

- ``bundle.json``: the bundle's :data:`BUNDLE_FORMAT`, the profile, and one entry per result: its
  path in the bundle, the cache's kind, name and configuration (its cache key), its size in bytes,
  and the chapters whose build asked for it (from the build's ``needs.json``, see :func:`needs_by_chapter`);
- ``registry.txt``: pooch's registry, one ``path sha256`` line per result file;
- one ``<kind>--<cache file stem>.safetensors`` per result (flat, as a release's assets are): its
  tensors as safetensors (no pickle),
  everything else as JSON in the file's metadata.

:func:`pull` fetches the results that the named chapters asked for and the cache lacks, each
checked against the registry (through ``pooch`` for URLs), and stores them in the cache under their
keys, so the chapters load them as if they had computed them. Nothing is downloaded unless asked.
An entry whose key the current code would not ask for (another code version's) is reported, never
stored under a key the code uses; a bundle of another format is refused whole.

A bundle is untrusted input. Pull reads and writes nothing outside the cache and its own temporary
download folder, whatever ``bundle.json`` and ``registry.txt`` say: both are checked whole before any
result is fetched, an entry's path must be the flat name its key gives (:func:`bundle_path`), its kind
one of the cache's result kinds, and a download stops at the size ``bundle.json`` records.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from torch import Tensor
from tqdm.auto import tqdm

from . import cache
from .data import file_sha256

__all__ = ["BUNDLE_FORMAT", "NEEDS_VAR", "PRECOMPUTED_VAR", "RESULT_FORMAT", "BundleError", "bundle_path", "make_bundle",
           "needs_by_chapter", "pull", "read_manifest", "read_registry", "read_result", "write_result"]

BUNDLE_FORMAT = 2
"""The layout of ``bundle.json`` (2: each entry records its size in bytes); a bundle of another format is refused."""
RESULT_FORMAT = 1
"""The layout of a result file (:func:`write_result`); a file of another format is refused."""
MAX_INDEX_BYTES = 64 << 20
"""The most ``bundle.json`` or ``registry.txt`` may weigh."""
MAX_RESULT_BYTES = 2 << 30
"""The most one result file may weigh: a release asset's limit (2 GiB)."""
MAX_FILES = 1000
"""The most files a bundle may hold, ``bundle.json`` and ``registry.txt`` included: a release's asset limit."""
SHA256 = re.compile(r"^[0-9a-f]{64}$")
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
    save_file(tensors, str(path), metadata={"skeleton": json.dumps(skeleton), "format": str(RESULT_FORMAT)})


def read_result(path: Path) -> Any:
    """The result that :func:`write_result` wrote to ``path``.

    Raises:
        BundleError: the file is not a result file of this :data:`RESULT_FORMAT`.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as err:
        raise BundleError(f"{path} is not a readable result file ({err})") from err
    if metadata.get("format") != str(RESULT_FORMAT):
        raise BundleError(f"{path} has result format {metadata.get('format')!r}; this code reads {RESULT_FORMAT}")
    try:
        return _join(json.loads(metadata["skeleton"]), tensors)
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as err:
        raise BundleError(f"{path} is not a result file: its skeleton does not match its tensors ({err!r})") from err


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
    for kind in kinds:
        if kind not in cache.RESULT_KINDS:
            raise BundleError(f"{kind!r} is not a kind of result; bundle one of {', '.join(cache.RESULT_KINDS)}")
        if kind not in cache.kinds():
            raise BundleError(f"no cached kind {kind!r} to bundle; there are: {', '.join(cache.kinds()) or 'none'}")
    wanted = [(kind, entry) for kind in kinds for entry in cache.index(kind) if belongs(entry["config"])]
    if len(wanted) + 2 > MAX_FILES:
        raise BundleError(f"{len(wanted)} results and the two index files exceed a release's {MAX_FILES} assets; "
                          "bundle fewer kinds")
    entries, lines, size = [], [], 0
    for kind, entry in wanted:
        stored = cache.cache_dir() / kind / entry["file"]
        path = bundle_path(kind, entry["name"], entry["config"])
        write_result(cache.load(stored), out / path)
        digest = file_sha256(out / path)
        entry_bytes = (out / path).stat().st_size
        if entry_bytes > MAX_RESULT_BYTES:
            raise BundleError(f"{path} weighs {entry_bytes:,} bytes, over a release asset's {MAX_RESULT_BYTES:,}")
        size += entry_bytes
        lines.append(f"{path} {digest}")
        entries.append({"path": path, "kind": kind, "file": entry["file"], "name": entry["name"],
                        "config": entry["config"], "bytes": entry_bytes,
                        "chapters": sorted(chapters.get(f"{kind}/{entry['file']}", []))})
    manifest = {"format": BUNDLE_FORMAT, "profile": profile, "bytes": size, "chapters_recorded": needs is not None,
                "entries": entries}
    cache.atomic_write_text("\n".join(lines) + "\n", out / "registry.txt")
    cache.atomic_write_text(json.dumps(manifest, indent=1, default=str) + "\n", out / "bundle.json")
    return manifest


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _is_flat_name(path: object) -> bool:
    """A bare file name: no folder, no climbing, nothing hidden, no control characters."""
    return (isinstance(path, str) and 0 < len(path) <= 255 and path == Path(path).name and "\\" not in path
            and not path.startswith(".") and path.isprintable())


class _TooLarge(Exception):
    """A download that outgrew its recorded size (not a ValueError: pooch retries those as damaged)."""


def _limited_download(limit: int, progress: tqdm | None = None) -> Callable[..., bool | None]:
    """A pooch downloader that streams ``url`` into ``output_file`` and stops past ``limit`` bytes."""
    def download(url: str, output_file: str, pooch_object: Any = None, check_only: bool = False) -> bool | None:
        import requests

        with requests.get(url, stream=True, timeout=60) as response:
            if check_only:
                return bool(response.ok)
            response.raise_for_status()
            announced = int(response.headers.get("Content-Length") or 0)
            if announced > limit:
                raise _TooLarge(f"the server announces {announced:,} bytes, the bundle records {limit:,}")
            _write_limited(response.iter_content(chunk_size=1 << 20), Path(output_file), limit, progress)
        return None
    return download


def _copy_limited(origin: Path, local: Path, limit: int, progress: tqdm | None = None) -> None:
    """Copy ``origin`` to ``local``, stopping past ``limit`` bytes (the file may grow while it is read)."""
    with open(origin, "rb") as source:
        _write_limited(iter(lambda: source.read(1 << 20), b""), local, limit, progress)


def _write_limited(chunks: Iterable[bytes], path: Path, limit: int, progress: tqdm | None = None) -> None:
    """Write ``chunks`` to ``path``, stopping past ``limit`` bytes."""
    written = 0
    with open(path, "wb") as out:
        for chunk in chunks:
            written += len(chunk)
            if written > limit:
                raise _TooLarge(f"more than the {limit:,} bytes the bundle records")
            out.write(chunk)
            if progress is not None:
                progress.update(len(chunk))


def _fetch_index(source: str, name: str, into: Path) -> str:
    """The text of the bundle's ``bundle.json`` or ``registry.txt`` (at most :data:`MAX_INDEX_BYTES`)."""
    local = into / name
    try:
        if _is_url(source):
            import pooch

            pooch.retrieve(f"{source.rstrip('/')}/{name}", known_hash=None, fname=name, path=str(into),
                           progressbar=False, downloader=_limited_download(MAX_INDEX_BYTES))
        else:
            origin = Path(source) / name
            if not origin.is_file() or origin.is_symlink():
                raise BundleError(f"the bundle at {source} has no {name}")
            _copy_limited(origin, local, MAX_INDEX_BYTES)
        return local.read_text(encoding="utf-8")
    except _TooLarge as err:
        raise BundleError(f"the bundle's {name} at {source} is too large: {err}") from err
    except UnicodeDecodeError as err:
        raise BundleError(f"the bundle's {name} at {source} is not UTF-8 text ({err})") from err
    except BundleError:
        raise
    except Exception as err:
        raise BundleError(f"cannot fetch {name} from {source} ({err})") from err


def bundle_path(kind: str, name: str, config: dict[str, Any]) -> str:
    """The file name a bundle gives the result of (kind, name, config): ``<kind>--<cache file stem>.safetensors``
    (flat: a release's assets have no folders)."""
    return f"{kind}--{cache.cache_path(kind, name, config).stem}.safetensors"


def read_manifest(text: str, source: str) -> dict[str, Any]:
    """``bundle.json``'s content, checked whole: its format, its profile, and for every entry a kind of
    :data:`intriguing.cache.RESULT_KINDS`, a name, a configuration, its chapters, its size in bytes, and the
    path :func:`bundle_path` gives that key (so a path is always a flat name under the download folder, and
    the cache stores the entry under the key its path names).

    Raises:
        BundleError: naming the first thing wrong (broken JSON, a missing field, a foreign kind, a path
            that is not the one its key gives, a repeated path, another format).
    """
    def refuse(what: str) -> BundleError:
        return BundleError(f"the bundle at {source} is malformed: {what}")

    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as err:
        raise refuse(f"bundle.json is not JSON ({err})") from err
    if not isinstance(manifest, dict):
        raise refuse("bundle.json is not a JSON object")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"the bundle at {source} has format {manifest.get('format')!r}; this code reads "
                          f"{BUNDLE_FORMAT}: use a bundle made by this version")
    if not isinstance(manifest.get("profile"), str) or not isinstance(manifest.get("entries"), list):
        raise refuse("bundle.json needs a profile (a string) and entries (a list)")
    seen: set[str] = set()
    for i, entry in enumerate(manifest["entries"]):
        if not isinstance(entry, dict):
            raise refuse(f"entry {i} is not a JSON object")
        kind, name, config, size = entry.get("kind"), entry.get("name"), entry.get("config"), entry.get("bytes")
        if kind not in cache.RESULT_KINDS:
            raise refuse(f"entry {i} has kind {kind!r}, not one of the cache's ({', '.join(cache.RESULT_KINDS)})")
        if not isinstance(name, str) or not name or not isinstance(config, dict):
            raise refuse(f"entry {i} needs a name (a non-empty string) and a config (a JSON object)")
        chapters = entry.get("chapters")
        if not isinstance(chapters, list) or not all(isinstance(c, str) for c in chapters):
            raise refuse(f"entry {i} needs its chapters as a list of strings")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= MAX_RESULT_BYTES:
            raise refuse(f"entry {i} records {size!r} bytes; a size is an integer from 1 to {MAX_RESULT_BYTES:,}")
        path = entry.get("path")
        if not _is_flat_name(path) or path != bundle_path(kind, name, config):
            raise refuse(f"entry {i}'s path {path!r} is not the file name its key gives "
                         f"({bundle_path(kind, name, config)!r})")
        if path in seen:
            raise refuse(f"entry {i} repeats the path {path!r}")
        seen.add(path)
    return manifest


def read_registry(text: str, source: str) -> dict[str, str]:
    """``registry.txt``'s ``path sha256`` lines (pooch's format), each path a flat file name and each sha256
    64 hexadecimal digits.

    Raises:
        BundleError: naming the first malformed or repeated line.
    """
    registry: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not _is_flat_name(fields[0]) or not SHA256.match(fields[1]) or fields[0] in registry:
            raise BundleError(f"the bundle at {source} is malformed: registry.txt line {number} is not a new "
                              f"'file-name sha256' pair: {line[:120]!r}")
        registry[fields[0]] = fields[1]
    return registry


def pull(source: str | None, profile: str, chapters: Iterable[str] = (), *,
         asked_for: Callable[[str, str, dict[str, Any]], bool] = lambda kind, name, config: True,
         dry_run: bool = False, progress: bool = True) -> dict[str, Any]:
    """Fetch from the bundle at ``source`` the results that ``chapters`` (default: every chapter) asked
    for and the cache lacks, check each against the registry's sha256 and the size ``bundle.json``
    records, and store it in the cache.

    The bundle is untrusted input: ``bundle.json`` and ``registry.txt`` are checked whole before anything
    is fetched (:func:`read_manifest`, :func:`read_registry`), every download goes to a temporary folder
    inside the cache under a flat name and stops at its recorded size, and a result enters the cache only
    through :func:`intriguing.cache.store`, under the key its entry names.

    Args:
        source: the bundle's URL (http or https) or folder; None: ``$INTRIGUING_PRECOMPUTED``.
        profile: the profile whose results are wanted; the bundle must be of it.
        chapters: only the results these chapters asked for (all, where the bundle records no
            chapters: one made without its build's ``needs.json``).
        asked_for: whether the current code would ask for a result of (kind, name, config).
        dry_run: say what would be fetched (``fetched``, ``bytes``), fetch nothing.
        progress: show a progress bar over the bytes fetched.

    Returns:
        ``fetched`` (or, with ``dry_run``, to fetch), ``present`` (already in the cache) and ``not asked for``
        (entries whose key the current code would not ask for: another version's), each a list of bundle
        paths; ``bytes``: the size of ``fetched``.

    Raises:
        BundleError: no source, a malformed bundle, one of another format or profile, or a file that is
            missing, larger than recorded, or whose sha256 differs from the registry's (the download is
            deleted; nothing of it enters the cache).
    """
    import pooch

    pooch.get_logger().setLevel("WARNING")  # not a line per file: pull reports what it fetched
    source = source or os.environ.get(PRECOMPUTED_VAR)
    if not source:
        raise BundleError(f"no bundle to pull from: give --from URL_OR_FOLDER or set ${PRECOMPUTED_VAR}")
    cache.check_writable("networks")
    downloads = Path(tempfile.mkdtemp(prefix=".pull-", dir=cache.cache_dir()))
    try:
        manifest = read_manifest(_fetch_index(source, "bundle.json", downloads), source)
        if manifest["profile"] != profile:
            raise BundleError(f"the bundle at {source} holds profile {manifest['profile']!r}, not {profile!r}")
        registry = read_registry(_fetch_index(source, "registry.txt", downloads), source)
        # A bundle made without the build's needs.json cannot tell chapters apart: all of it is wanted.
        wanted = set(chapters) if manifest.get("chapters_recorded", True) else set()
        found: dict[str, Any] = {"fetched": [], "present": [], "not asked for": [], "bytes": 0}
        todo = []
        for entry in manifest["entries"]:
            if wanted and not wanted & set(entry["chapters"]):
                continue
            if not asked_for(entry["kind"], entry["name"], entry["config"]):
                found["not asked for"].append(entry["path"])
            elif cache.cache_path(entry["kind"], entry["name"], entry["config"]).exists():
                found["present"].append(entry["path"])
            elif entry["path"] not in registry:
                raise BundleError(f"the bundle's registry has no sha256 for {entry['path']}")
            else:
                todo.append(entry)
        found["bytes"] = sum(entry["bytes"] for entry in todo)
        if dry_run:
            found["fetched"] = [entry["path"] for entry in todo]
            return found
        bar = tqdm(total=found["bytes"], unit="B", unit_scale=True, desc=f"pull {len(todo)} file(s)",
                   disable=not progress or not todo)
        with bar:
            for entry in todo:
                local = _fetch_file(source, entry["path"], registry[entry["path"]], entry["bytes"], downloads, bar)
                try:
                    result = read_result(local)
                finally:
                    local.unlink()
                cache.store(entry["kind"], entry["name"], entry["config"], result)
                found["fetched"].append(entry["path"])
        return found
    finally:
        shutil.rmtree(downloads, ignore_errors=True)


def _fetch_file(source: str, path: str, sha256: str, size: int, into: Path, progress: tqdm | None = None) -> Path:
    """One result file of at most ``size`` bytes, checked against its sha256; a refused file is deleted and named."""
    import pooch

    local = into / path
    try:
        if _is_url(source):
            fetcher = pooch.create(path=str(into), base_url=source.rstrip("/") + "/",
                                   registry={path: f"sha256:{sha256}"}, retry_if_failed=2)
            try:
                return Path(fetcher.fetch(path, progressbar=False, downloader=_limited_download(size, progress)))
            except ValueError as err:  # pooch deletes a download whose hash differs
                raise BundleError(f"{path} from {source} is damaged: its sha256 differs from the registry's "
                                  f"({err})") from err
            except (BundleError, _TooLarge):
                raise
            except Exception as err:
                raise BundleError(f"cannot fetch {path} from {source} ({err})") from err
        origin = Path(source) / path
        if not origin.is_file() or origin.is_symlink():
            raise BundleError(f"the bundle at {source} has no {path}")
        _copy_limited(origin, local, size, progress)
        if file_sha256(local) != sha256:
            raise BundleError(f"{path} in {source} is damaged: its sha256 differs from the registry's")
        return local
    except _TooLarge as err:
        raise BundleError(f"{path} from {source} is larger than recorded: {err}") from err
    except BaseException:
        local.unlink(missing_ok=True)
        raise
