"""Configuration-keyed, atomically written storage of computed results.

A result is stored under a name derived from a hash of its configuration, so changing any
setting computes anew. Each kind's folder also keeps an index, one JSON line per stored result
with its configuration, so that ``python -m intriguing cache info`` can say what is there.
Files are written to a temporary name and renamed into place, so a killed run never leaves a
half-written file under a real name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

__all__ = ["MISSING", "atomic_save", "atomic_write_text", "cache_dir", "cache_path", "cached", "clear", "index", "load",
           "lookup", "store"]

T = TypeVar("T")
INDEX = "index.jsonl"


def cache_dir() -> Path:
    """``$INTRIGUING_CACHE``, else ``~/.cache/intriguing``."""
    return Path(os.environ.get("INTRIGUING_CACHE", Path.home() / ".cache" / "intriguing"))


def config_hash(config: dict[str, Any]) -> str:
    """A short, stable hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path(kind: str, name: str, config: dict[str, Any], suffix: str = ".pt") -> Path:
    """Where the result of ``kind`` for ``name`` under ``config`` is stored."""
    slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return cache_dir() / kind / f"{slug}-{config_hash(config)}{suffix}"


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(text: str, path: Path) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: Path) -> Any:
    """Load a file written by :func:`atomic_save` (tensors, numbers, strings, lists, dicts)."""
    return torch.load(path, map_location="cpu", weights_only=True)


MISSING = object()
"""What :func:`lookup` returns for a result that is not stored (or not readable)."""


def lookup(kind: str, name: str, config: dict[str, Any]) -> Any:
    """The stored result for ``config``, or :data:`MISSING`. An unreadable stored file is reported
    and treated as missing, never trusted."""
    path = cache_path(kind, name, config)
    if path.exists():
        try:
            return load(path)
        except Exception as err:
            warnings.warn(f"ignoring unreadable cache file {path} ({err}); recomputing", stacklevel=2)
    return MISSING


def store(kind: str, name: str, config: dict[str, Any], result: Any) -> None:
    """Store ``result`` for ``config`` atomically, and note it in the kind's index."""
    path = cache_path(kind, name, config)
    atomic_save(result, path)
    line = json.dumps({"file": path.name, "name": name, "config": config}, sort_keys=True, default=str)
    with open(path.parent / INDEX, "a", encoding="utf-8") as out:  # one short append: whole lines only
        out.write(line + "\n")


def cached(kind: str, name: str, config: dict[str, Any], compute: Callable[[], T]) -> T:
    """Return the stored result for ``config``, or compute, store and return it."""
    found = lookup(kind, name, config)
    if found is not MISSING:
        return found
    result = compute()
    store(kind, name, config, result)
    return result


def index(kind: str) -> list[dict[str, Any]]:
    """The index of ``kind``: one entry (``file``, ``name``, ``config``) per stored result still present.
    Unreadable lines (a line cut by a killed run) are skipped."""
    path = cache_dir() / kind / INDEX
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (path.parent / entry["file"]).exists():
            entries.append(entry)
    return entries


def clear(kind: str | None = None) -> int:
    """Delete every cached result, or those of one kind; returns how many files were removed.

    Raises:
        ValueError: ``kind`` is not a folder of the cache.
    """
    root = cache_dir()
    kinds = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []
    if kind is not None and kind not in kinds:
        raise ValueError(f"no cached kind {kind!r} in {root}; there are: {', '.join(kinds) or 'none'}")
    removed = 0
    for name in [kind] if kind is not None else kinds:
        folder = root / name
        removed += sum(1 for p in folder.iterdir() if p.suffix == ".pt")
        shutil.rmtree(folder)
    return removed
