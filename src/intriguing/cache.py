"""Configuration-keyed, atomically written storage of computed results.

A result is stored under a name derived from a hash of its configuration, so changing any
setting computes anew. Files are written to a temporary name and renamed into place, so a
killed run never leaves a half-written file under a real name.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

__all__ = ["atomic_save", "atomic_write_text", "cache_dir", "cache_path", "cached", "load"]

T = TypeVar("T")


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


def cached(kind: str, name: str, config: dict[str, Any], compute: Callable[[], T]) -> T:
    """Return the stored result for ``config``, or compute, store and return it.

    An unreadable stored file is reported and recomputed, never trusted.
    """
    path = cache_path(kind, name, config)
    if path.exists():
        try:
            return load(path)
        except Exception as err:
            warnings.warn(f"ignoring unreadable cache file {path} ({err}); recomputing", stacklevel=2)
    result = compute()
    atomic_save(result, path)
    return result
