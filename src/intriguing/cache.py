"""Configuration-keyed, atomically written, checksummed storage of computed results.

A result is stored under a name derived from a hash of its configuration, so changing any
setting computes anew. Each kind's folder keeps an index, one JSON line per file the cache wrote
there, with the file's configuration, size and sha256: ``python -m intriguing cache info`` reads
it to say what is there, :func:`load` checks every file against it, and :func:`clear` deletes
only the files it names. The cache's root holds a ``CACHEDIR.TAG`` (the cache-directory tag that
backup tools honour) from its first write.

Files are written to a temporary name and renamed into place, so a killed run never leaves a
half-written file under a real name; a killed run's temporary files are reported by
:func:`stray_files` and removed by :func:`clear`. Writes and :func:`clear` take the root's lock
(``filelock``), so a clear never pulls a folder from under a writer in another process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
from filelock import FileLock

from .data import file_sha256, write_atomically
from .paper import CHAPTER_VAR

__all__ = ["MISSING", "NEEDS_VAR", "NO_COMPUTE_VAR", "RESULT_KINDS", "CacheIntegrityError", "NotComputed", "atomic_save",
           "atomic_write_text", "cache_dir", "cache_path", "cached", "check_writable", "clear", "forbid_compute", "index",
           "kinds", "load", "lookup", "slug", "store", "stray_files", "unrecorded"]

T = TypeVar("T")
ENV_VAR = "INTRIGUING_CACHE"
INDEX = "index.jsonl"
TAG = "CACHEDIR.TAG"
LOCK = ".lock"
TAG_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
            "# This file is a cache directory tag created by intriguing (python -m intriguing cache info).\n")
NEEDS_VAR = "INTRIGUING_NEEDS"
"""A file that :func:`lookup` appends every asked-for result to, with the chapter that asked."""
NO_COMPUTE_VAR = "INTRIGUING_NO_COMPUTE"
"""Set (to anything but ``""`` or ``0``): nothing is computed. A result the cache lacks raises :class:`NotComputed`
where it would be computed, and so do the training and search entry points (:func:`forbid_compute`): the check
that a chapter runs wholly from pulled results."""
STRAY = re.compile(r"^\..+\.\d+\.tmp$")
RESULT_KINDS = ("networks", "attacks", "attacks-min", "attacks-exact", "attacks-imagenet", "peers",
                "adversarial-training")
"""The kinds of result the chapters ask the cache for (``checkpoints`` holds training's resumable state,
no result): what a bundle may carry (:mod:`intriguing.bundle`)."""
KIND = re.compile(r"^[a-z][a-z0-9-]*$")
"""A kind is one folder of the cache's root: never a path."""
"""The names :func:`atomic_save` and :func:`atomic_write_text` write before renaming into place."""


class CacheIntegrityError(RuntimeError):
    """A cached file's content differs from the sha256 the cache recorded when it stored the file."""


class NotComputed(RuntimeError):
    """Something was about to be computed while ``$INTRIGUING_NO_COMPUTE`` forbids it."""


def forbid_compute(what: str) -> None:
    """Raise :class:`NotComputed` naming ``what`` (e.g. ``"attacks M1-test-0"``) if ``$INTRIGUING_NO_COMPUTE`` is
    set: called where a result is about to be computed, and at the training and search entry points."""
    if os.environ.get(NO_COMPUTE_VAR, "") not in ("", "0"):
        raise NotComputed(f"{what} is not in the cache at {cache_dir()} and ${NO_COMPUTE_VAR} forbids computing it")


def cache_dir() -> Path:
    """``$INTRIGUING_CACHE``, else ``~/.cache/intriguing``.

    Raises:
        ValueError: ``$INTRIGUING_CACHE`` is set but empty (it would name the current folder).
    """
    chosen = os.environ.get(ENV_VAR)
    if chosen is None:
        return Path.home() / ".cache" / "intriguing"
    if not chosen.strip():
        raise ValueError(f"${ENV_VAR} is set but empty; unset it (default ~/.cache/intriguing) or name a folder")
    return Path(chosen)


def config_hash(config: dict[str, Any]) -> str:
    """A short, stable hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path(kind: str, name: str, config: dict[str, Any], suffix: str = ".pt") -> Path:
    """Where the result of ``kind`` for ``name`` under ``config`` is stored: ``<root>/<kind>/<slug>-<hash><suffix>``,
    the name slugged to letters, digits, ``-`` and ``_``.

    Raises:
        ValueError: ``kind`` is not a plain folder name (lower-case letters, digits and ``-``).
    """
    if not isinstance(kind, str) or not KIND.match(kind):
        raise ValueError(f"a cache kind is a folder name of lower-case letters, digits and '-', got {kind!r}")
    return cache_dir() / kind / f"{slug(name)}-{config_hash(config)}{suffix}"


def slug(name: str) -> str:
    """``name`` as the cache writes it in a file name: every character but letters, digits, ``-`` and ``_``
    replaced by ``_``."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _root_of(path: Path) -> Path:
    """The cache root that holds ``path`` (its kind folder's parent), or the folder itself outside it."""
    root = cache_dir()
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:  # not inside the root
        return path.parent
    return root


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    if not (root / TAG).exists():
        (root / TAG).write_text(TAG_TEXT, encoding="utf-8")
    with FileLock(str(root / LOCK)):
        yield


def atomic_save(obj: Any, path: Path, *, name: str | None = None, config: dict[str, Any] | None = None) -> None:
    """``torch.save`` to a temporary file beside ``path``, rename it into place, and record its sha256
    (with ``name`` and ``config``) in the folder's index; under the cache root's lock."""
    with _locked(_root_of(path)):
        write_atomically(path, lambda f: torch.save(obj, f))
        line = {"file": path.name, "name": name or path.stem, "config": config or {}, "bytes": path.stat().st_size,
                "sha256": file_sha256(path)}
        with open(path.parent / INDEX, "a", encoding="utf-8") as out:  # one short append: whole lines only
            out.write(json.dumps(line, sort_keys=True, default=str) + "\n")


def atomic_write_text(text: str, path: Path) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def _records(folder: Path) -> list[dict[str, Any]]:
    """Every readable line of ``folder``'s index, oldest first (a line cut by a killed run is skipped)."""
    path = folder / INDEX
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("file"), str):
            entries.append(entry)
    return entries


def recorded_sha256(path: Path) -> str | None:
    """The sha256 the index recorded when ``path`` was last written (None: no record, e.g. a file
    written before the cache recorded checksums)."""
    found = [e.get("sha256") for e in _records(path.parent) if e["file"] == path.name]
    return found[-1] if found else None


def load(path: Path) -> Any:
    """Load a file written by :func:`atomic_save` (tensors, numbers, strings, lists, dicts), after
    checking its bytes against the sha256 recorded when it was written.

    Raises:
        CacheIntegrityError: the file's sha256 differs from the recorded one.
    """
    expected = recorded_sha256(path)
    if expected is not None and file_sha256(path) != expected:
        raise CacheIntegrityError(f"{path} is damaged: its sha256 differs from the one recorded when it was stored")
    return torch.load(path, map_location="cpu", weights_only=True)


MISSING = object()
"""What :func:`lookup` returns for a result that is not stored (or not readable)."""
_UNRECORDED = [0]  # > 0 inside :func:`unrecorded`


@contextmanager
def unrecorded() -> Iterator[None]:
    """Lookups inside are not a chapter's needs (``$INTRIGUING_NEEDS``): for results read only to derive another
    cached result, which the chapter asks for itself, so that a bundle's reader pulls the derived one alone."""
    _UNRECORDED[0] += 1
    try:
        yield
    finally:
        _UNRECORDED[0] -= 1


def lookup(kind: str, name: str, config: dict[str, Any]) -> Any:
    """The stored result for ``config``, or :data:`MISSING`. A damaged or unreadable stored file is
    reported, named and treated as missing, never trusted. Where ``$INTRIGUING_NEEDS`` names a file
    (during a build), the chapter being executed and the result it asked for are appended to it."""
    path = cache_path(kind, name, config)
    needs = os.environ.get(NEEDS_VAR)
    if needs and not _UNRECORDED[0]:
        line = {"chapter": os.environ.get(CHAPTER_VAR, ""), "kind": kind, "file": path.name}
        with open(needs, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
    if path.exists():
        try:
            return load(path)
        except Exception as err:
            warnings.warn(f"ignoring unreadable cache file {path} ({err}); recomputing", stacklevel=2)
    return MISSING


def store(kind: str, name: str, config: dict[str, Any], result: Any) -> None:
    """Store ``result`` for ``config`` atomically, and note it with its sha256 in the kind's index."""
    atomic_save(result, cache_path(kind, name, config), name=name, config=config)


def check_writable(kind: str) -> None:
    """Raise ``PermissionError`` naming the folder unless the cache can write files of ``kind``:
    called before a long computation, so that an unwritable cache is found before, not after it."""
    folder = cache_dir() / kind
    try:
        with _locked(cache_dir()):
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".probe.{os.getpid()}.tmp"
            probe.write_bytes(b"")
            probe.unlink()
    except OSError as err:
        raise PermissionError(f"the result cache cannot write to {folder} ({err}); set ${ENV_VAR} to a writable "
                              "folder") from err


def cached(kind: str, name: str, config: dict[str, Any], compute: Callable[[], T], derived: bool = False) -> T:
    """Return the stored result for ``config``, or compute, store and return it. ``derived``: ``compute`` only
    reads other cached results and combines them, so its lookups are :func:`unrecorded` (a reader who pulls the
    chapter then downloads this result alone) and ``$INTRIGUING_NO_COMPUTE`` does not forbid it."""
    found = lookup(kind, name, config)
    if found is not MISSING:
        return found
    if not derived:
        forbid_compute(f"{kind} {name}")
    check_writable(kind)
    if derived:
        with unrecorded():
            result = compute()
    else:
        result = compute()
    store(kind, name, config, result)
    return result


def index(kind: str) -> list[dict[str, Any]]:
    """The index of ``kind``: the newest entry (``file``, ``name``, ``config``, ``bytes``, ``sha256``)
    of every stored result still present, in the order they were first stored."""
    folder = cache_dir() / kind
    newest: dict[str, dict[str, Any]] = {}
    for entry in _records(folder):
        newest[entry["file"]] = entry
    return [entry for file, entry in newest.items() if (folder / file).exists()]


def kinds() -> list[str]:
    """The kinds the cache holds: the root's folders with an index, which only the cache writes."""
    root = cache_dir()
    return sorted(p.name for p in root.iterdir() if (p / INDEX).is_file()) if root.is_dir() else []


def stray_files() -> list[Path]:
    """Temporary files that a killed write left in the cache's kind folders."""
    root = cache_dir()
    return sorted(f for kind in kinds() for f in (root / kind).iterdir() if STRAY.match(f.name))


def _git_checkout_at_or_above(folder: Path) -> Path | None:
    for parent in [folder, *folder.parents]:
        if (parent / ".git").exists():
            return parent
    return None


def clear(kind: str | None = None) -> int:
    """Delete the files the cache stored (every kind, or one) and the temporary files of killed writes;
    returns how many stored files were removed. Only files named in a kind's index, or named like the
    cache's temporary files, are deleted; anything else in a folder stays, and so does the folder.

    Raises:
        ValueError: ``kind`` is not a kind of the cache, or the root is (or lies inside) a git checkout
            and holds no ``CACHEDIR.TAG`` of the cache's (``$INTRIGUING_CACHE`` pointing at a clone).
    """
    root = cache_dir()
    if not root.is_dir():
        if kind is not None:
            raise ValueError(f"no cached kind {kind!r}: {root} does not exist")
        return 0
    checkout = _git_checkout_at_or_above(root.resolve())
    if checkout is not None and not (root / TAG).is_file():
        raise ValueError(f"refusing to clear {root}: it lies inside the git checkout {checkout} and holds no {TAG} "
                         f"of the result cache's; point ${ENV_VAR} at the cache")
    present = kinds()
    if kind is not None and kind not in present:
        raise ValueError(f"no cached kind {kind!r} in {root}; there are: {', '.join(present) or 'none'}")
    removed = 0
    with _locked(root):
        for name in [kind] if kind is not None else present:
            folder = root / name
            for file in {entry["file"] for entry in _records(folder)}:
                target = folder / file
                if target.parent == folder and target.is_file():  # an index names files, never paths
                    target.unlink()
                    removed += 1
            for file in folder.iterdir():
                if STRAY.match(file.name):
                    file.unlink()
            (folder / INDEX).unlink(missing_ok=True)
            if not any(folder.iterdir()):
                folder.rmdir()
    return removed
