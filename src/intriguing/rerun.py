"""Rerunning chapters from a bundle: the check that a reader who pulls a chapter's results gets its numbers.

:func:`check_chapters` takes the cache of a run that executed the chapters, what each chapter asked that cache for
(the ``$INTRIGUING_NEEDS`` log, :mod:`intriguing.cache`) and what each glued into its prose (the
``$INTRIGUING_GLUE`` log, :func:`intriguing.plots.glue`). It bundles every kind of result the cache holds
(:func:`intriguing.bundle.make_bundle`), then, chapter by chapter, pulls what the chapter needs into an empty cache
(:func:`intriguing.bundle.pull`), executes the chapter with ``$INTRIGUING_NO_COMPUTE`` set, so that any training or
search would raise instead of running, and compares every value it glues with the run's.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from . import bundle, cache, paper, plots
from .artifacts import asked_for
from .profiles import get_profile

__all__ = ["RerunMismatch", "check_chapters", "glue_differences", "read_glue"]


class RerunMismatch(AssertionError):
    """A chapter rerun from a bundle failed, or glued other values than the run that made the bundle."""


def read_glue(log: Path) -> dict[str, dict[str, Any]]:
    """Chapter -> glue name -> the last value glued under it, from a ``$INTRIGUING_GLUE`` log.

    Raises:
        ValueError: a line of the log is not a glue record; the message names the file and line.
    """
    glued: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(log.read_text(encoding="utf-8").splitlines(), 1):
        try:
            entry = json.loads(line)
            glued.setdefault(entry["chapter"], {})[entry["name"]] = entry["value"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{log}, line {number}: not a glue record ({err!r})") from err
    return glued


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def glue_differences(reference: dict[str, Any], rerun: dict[str, Any]) -> list[str]:
    """Each glue name whose value differs between two runs of a chapter, or that one of them lacks, in words."""
    differences = [f"{name}: {reference[name]!r} in the run, {rerun[name]!r} rerun" for name in reference
                   if name in rerun and not _same(reference[name], rerun[name])]
    differences += [f"{name}: glued in the run only" for name in reference if name not in rerun]
    differences += [f"{name}: glued in the rerun only" for name in rerun if name not in reference]
    return differences


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` set (the kernels papermill starts inherit it), restored afterwards."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def check_chapters(root: Path, needs_log: Path, glue_log: Path, workdir: Path, profile_name: str | None = None,
                   chapter_names: list[str] | None = None) -> pd.DataFrame:
    """Rerun each chapter from a bundle of the current cache into an empty cache, computing nothing, and compare
    what it glues with what the run that filled the cache glued.

    Args:
        root: the repository's root (its ``book/`` holds the chapters).
        needs_log: the run's ``$INTRIGUING_NEEDS`` log (each line: chapter, kind, file).
        glue_log: the run's ``$INTRIGUING_GLUE`` log.
        workdir: where the bundle, the empty caches and the executed notebooks go (emptied first).
        profile_name: the profile the run executed (None: ``$INTRIGUING_PROFILE``, else ``full``).
        chapter_names: the chapters to rerun (None: every chapter the glue log names).

    Returns:
        One row per chapter: ``files`` and ``MB`` pulled, ``pull (s)``, ``execute (s)``, ``glued`` (values
        compared).

    Raises:
        RerunMismatch: a chapter failed to execute from its pulled results (for example because it would have
            computed something), or glued a value that differs from the run's; raised after every chapter ran,
            naming each failure.
    """
    import papermill

    profile = get_profile(profile_name).name
    reference = read_glue(glue_log)
    names = chapter_names if chapter_names is not None else [name for name in reference if name]
    notebooks = {path.stem: path for path in sorted((root / "book").glob("*.ipynb"))}
    unknown = [name for name in names if name not in notebooks or name not in reference]
    if unknown:
        raise ValueError(f"no chapter or no glued value for {', '.join(unknown)}; the run glued for "
                         f"{', '.join(sorted(n for n in reference if n)) or 'no chapter'}")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    source = workdir / "bundle"
    kinds = [kind for kind in cache.RESULT_KINDS if kind in cache.kinds()]
    bundle.make_bundle(source, profile, kinds, bundle.needs_by_chapter(needs_log))
    rows, failures = {}, []
    for name in names:
        empty = workdir / f"cache-{name}"
        glued = workdir / f"glue-{name}.jsonl"
        with _environment(**{cache.ENV_VAR: str(empty.resolve())}):
            began = time.perf_counter()
            pulled = bundle.pull(str(source.resolve()), profile, [name],
                                 asked_for=lambda kind, file, config: asked_for(kind, file, config, profile),
                                 progress=False)
            pull_seconds = time.perf_counter() - began
        with _environment(**{cache.ENV_VAR: str(empty.resolve()), cache.NO_COMPUTE_VAR: "1",
                             plots.GLUE_VAR: str(glued.resolve()), paper.CHAPTER_VAR: name}):
            began = time.perf_counter()
            try:
                papermill.execute_notebook(str(notebooks[name]), str(workdir / notebooks[name].name),
                                           parameters={"profile": profile}, cwd=str(root / "book"), progress_bar=False)
            except Exception as error:  # a failing cell, or a kernel that died: the other chapters go on
                failures.append(f"{name}: {(str(error).strip().splitlines() or [type(error).__name__])[-1]}")
            seconds = time.perf_counter() - began
        rerun = read_glue(glued).get(name, {}) if glued.exists() else {}
        failures += [f"{name}: {difference}" for difference in glue_differences(reference[name], rerun)]
        rows[name] = {"files": len(pulled["fetched"]), "MB": pulled["bytes"] / 1e6, "pull (s)": pull_seconds,
                      "execute (s)": seconds, "glued": len(rerun)}
    if failures:
        raise RerunMismatch("chapters rerun from the bundle differ from the run that made it:\n  "
                            + "\n  ".join(failures))
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("chapter")

