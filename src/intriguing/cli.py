"""The command line, ``python -m intriguing``: build the book or some of its chapters, look after the
cache, list the profiles.

    python -m intriguing build [--profile P] [--no-html] [CHAPTER ...]
    python -m intriguing cache info
    python -m intriguing cache clear [--kind K]   (only what the cache itself stored)
    python -m intriguing cache bundle --profile P [--kind K ...] OUT
    python -m intriguing cache pull [--from URL_OR_DIR] [--profile P] [--dry-run] [CHAPTER ...]
    python -m intriguing profiles
    python -m intriguing check-rerun --needs LOG --glue LOG [--workdir DIR] [--profile P] [CHAPTER ...]

``build`` runs from the repository (it needs ``book/``, ``_toc.yml`` and ``_config.yml``): it executes
the named chapters (default: all) with papermill into ``_build/src``, keeps the other chapters'
executed copies from an earlier build of the same profile, renders ``_build/html`` with Jupyter
Book, and writes beside it the build's timing record (:mod:`intriguing.timing`) and
``results.json``: every number a chapter compared with the paper (:func:`intriguing.paper.compare_with_paper`),
with the paper's value, ours, the tolerance and the verdict, and under ``claims`` every claim of
:data:`intriguing.paper.CLAIMS` with the verdict its chapter decided (:func:`intriguing.paper.decide`);
the intro shows both, the claims first. A chapter whose execution fails (a check
outside its tolerance, say) does not stop the others: the book is rendered with the failing cell's
error in place and a visible "not computed" mark wherever its prose names a number the chapter never
glued, both records name the failed chapters (``chapters_failed``; a failed rendering too), and the
command exits with status 1. The build also writes ``needs.json``: for each chapter, the cached
results it asked for, which ``cache bundle`` records so that ``cache pull CHAPTER`` fetches exactly
those (:mod:`intriguing.bundle`). With ``$INTRIGUING_PRECOMPUTED`` set to a bundle's URL or folder, the
build first pulls what its chapters need from there.

``check-rerun`` (the tests' last step) reruns each chapter from a bundle of the current cache pulled into an empty
cache, computing nothing, and checks that it glues what the run that filled the cache glued (:mod:`intriguing.rerun`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from . import bundle, cache, paper, timing
from .profiles import PROFILES, get_profile

__all__ = ["NOT_DECIDED", "BuildFailed", "build", "cache_info", "chapters", "claim_label", "claims_markdown",
           "colab_parameters", "main", "make_bundle", "pull", "repository_url", "summary_markdown"]

BUILD = Path("_build")


class BuildFailed(RuntimeError):
    """One or more chapters failed to execute; the rest of the build went on."""


def chapters(root: Path) -> dict[str, str]:
    """Chapter name -> its path without suffix (``"blind_spots"`` -> ``"book/blind_spots"``), for every
    notebook in the table of contents, in order."""
    import yaml

    toc_file = root / "_toc.yml"
    if not toc_file.exists():
        raise FileNotFoundError(f"no _toc.yml in {root.resolve()}: run the build from the repository's root")
    toc = yaml.safe_load(toc_file.read_text(encoding="utf-8"))
    files = [toc["root"]] + [c["file"] for c in toc.get("chapters", [])]
    return {Path(f).name: f for f in files if (root / f"{f}.ipynb").exists()}


def repository_url(root: Path) -> str:
    """``repository.url`` of ``_config.yml``: the one place that names the repository (see
    :func:`colab_parameters`)."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    url = (config.get("repository") or {}).get("url")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise ValueError(f"_config.yml's repository.url must be an https URL, got {url!r}")
    return url


def colab_parameters(root: Path) -> dict[str, str] | None:
    """What the chapters' Colab cells install and fetch, for the commit the book is built from: the
    library at that commit (``package``), the data-only packages' hash-pinned requirements file at that
    commit (``data``) and the commit's published bundle (``precomputed``, from ``_config.yml``'s
    ``repository.precomputed``, with ``{commit}`` filled in). None outside a git checkout."""
    import yaml

    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        return None
    commit = done.stdout.strip()
    url = repository_url(root)
    pattern = (yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")).get("repository") or {}).get("precomputed")
    if not isinstance(pattern, str) or "{commit}" not in pattern:
        raise ValueError(f"_config.yml's repository.precomputed must be a URL pattern with {{commit}}, got {pattern!r}")
    raw = url.replace("https://github.com/", "https://raw.githubusercontent.com/", 1)
    return {"package": f"intriguing @ git+{url}@{commit}", "data": f"{raw}/{commit}/requirements-data.txt",
            "precomputed": pattern.format(commit=commit)}


def _colab_cell_parameters(colab: dict[str, str] | None, profile: str, chapter: str) -> dict[str, str] | None:
    """:func:`colab_parameters` with the arguments of the chapter's ``cache pull``."""
    return None if colab is None else {**colab, "pull": f"--from {colab['precomputed']} --profile {profile} {chapter}"}


def _executed_profile(path: Path) -> str | None:
    """The profile papermill executed a notebook with (None: not an executed notebook)."""
    if not path.exists():
        return None
    meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("papermill", {})
    profile = meta.get("parameters", {}).get("profile")
    return profile if isinstance(profile, str) else None


def _hide_injected_parameters(path: Path) -> None:
    """Tag the cell papermill injects with the profile ``remove-cell``: it is plumbing, not prose."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(nb, path)


def _largest_child_peak_mib() -> int | None:
    """The largest peak resident memory (MiB) of the finished processes this one started (the chapters'
    kernels, the renderer), or None where the platform does not say."""
    try:
        import resource
    except ImportError:  # not a Unix
        return None
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def build(profile_name: str | None, names: list[str], root: Path = Path("."), render: bool = True) -> dict[str, Any]:
    """Execute chapters and render the HTML; see the module's docstring.

    Args:
        profile_name: a profile of :data:`intriguing.profiles.PROFILES` (None: ``$INTRIGUING_PROFILE``
            or ``full``).
        names: chapters to execute (empty: all).
        root: the repository's root.
        render: render the HTML with Jupyter Book. Without it (a machine without Jupyter Book, such as a GPU
            runner that times the chapters), the records are written beside where the HTML would be, and
            ``timings/<profile>.json``, the record of whole builds, is left alone.

    Returns:
        The build's timing record (also written to ``_build/html/timings.json``).

    Raises:
        ValueError: an unknown chapter or profile, or a chapter left out that no earlier build of
            this profile executed.
        BuildFailed: a chapter's execution failed; raised after every chapter ran and the records
            were written.
    """
    import papermill

    missing = [name for name in ("_config.yml", "_toc.yml", "book") if not (root / name).exists()]
    if missing:
        raise FileNotFoundError(f"no {', '.join(missing)} in {root.resolve()}: run the build from the repository's root")
    profile = get_profile(profile_name).name
    colab = colab_parameters(root)
    known = chapters(root)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown chapter(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    selected = names or list(known)
    src = root / BUILD / "src"
    kept = [name for name in known if name not in selected]
    stale = [name for name in kept if _executed_profile(src / f"{known[name]}.ipynb") != profile]
    if stale:
        raise ValueError(f"chapter(s) {', '.join(stale)} have no executed copy of profile {profile!r} in "
                         f"{src}: build them too, or build everything")
    cache.check_writable("networks")  # before hours of work, not after them
    start = time.perf_counter()
    if not kept:
        shutil.rmtree(src, ignore_errors=True)
    (src / "book").mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, src / name)
    for page in [*(root / "book").glob("*.md"), *(root / "book").glob("*.bib")]:
        shutil.copy2(page, src / "book" / page.name)

    events = root / BUILD / "timing-events.jsonl"
    events.unlink(missing_ok=True)
    os.environ[timing.ENV_VAR] = str(events.resolve())
    comparisons = root / BUILD / "results-events.jsonl"
    comparisons.unlink(missing_ok=True)
    os.environ[paper.RESULTS_VAR] = str(comparisons.resolve())
    needs = root / BUILD / "needs-events.jsonl"
    needs.unlink(missing_ok=True)
    os.environ[bundle.NEEDS_VAR] = str(needs.resolve())
    os.environ["INTRIGUING_PROFILE"] = profile
    cold = not any(cache.cache_dir().rglob("*.pt"))
    if os.environ.get(bundle.PRECOMPUTED_VAR):
        pulled = pull(None, profile, selected)
        print(f"=== pulled {len(pulled['fetched'])} precomputed result(s) from ${bundle.PRECOMPUTED_VAR}", flush=True)
    failed: dict[str, str] = {}
    for name in selected:
        print(f"=== executing {known[name]}.ipynb ({profile})", flush=True)
        began = time.perf_counter()
        os.environ[paper.CHAPTER_VAR] = name
        try:
            papermill.execute_notebook(str(root / f"{known[name]}.ipynb"), str(src / f"{known[name]}.ipynb"),
                                       parameters={"profile": profile,
                                                   "colab": _colab_cell_parameters(colab, profile, name)},
                                       cwd=str(root / "book"), log_output=True)
        except Exception as error:  # a failing cell, or a kernel that died: the other chapters go on
            why = f"{error.ename}: {error.evalue}" if isinstance(error, papermill.PapermillExecutionError) \
                else f"{type(error).__name__}: {error}"
            failed[name] = (why.splitlines() or [why])[0]
            print(f"=== {name} FAILED: {failed[name]}", flush=True)
        seconds = time.perf_counter() - began
        timing.record("chapter", name, seconds)
        print(f"=== {name} took {seconds:.0f} s", flush=True)
        executed = src / f"{known[name]}.ipynb"
        if not executed.exists():  # papermill never wrote it: render the source, unexecuted
            shutil.copy2(root / f"{known[name]}.ipynb", executed)
        _hide_injected_parameters(executed)
        if name in failed:
            _mark_not_computed(executed)

    results = _results(root / BUILD / "html" / "results.json", comparisons, profile, kept)
    cache.atomic_write_text(summary_markdown(results), src / "book" / "results_summary.md")
    cache.atomic_write_text(claims_markdown(results, known), src / "book" / "claims_ledger.md")

    jupyter_book = shutil.which("jupyter-book") or str(Path(sys.executable).with_name("jupyter-book"))
    rendered = subprocess.run([jupyter_book, "build", str(src), "--path-output", str(root), "--warningiserror",
                               "--keep-going"]) if render else subprocess.CompletedProcess([], 0)
    (root / BUILD / "html").mkdir(parents=True, exist_ok=True)
    if rendered.returncode != 0:
        failed[RENDER] = f"jupyter-book build exited with status {rendered.returncode}"
        print(f"=== the HTML FAILED to render: {failed[RENDER]}", flush=True)
    record = timing.summarise(events, profile, time.perf_counter() - start)
    record["cache_at_start"] = "empty" if cold else "warm"
    record["chapters_executed"] = "all" if not kept else selected
    record["chapters_failed"] = failed
    record["html"] = "rendered" if render else "not rendered"
    record["peak_process_memory_mib"] = _largest_child_peak_mib()
    results["chapters_failed"] = failed
    asked = bundle.needs_by_chapter(needs)
    previous_needs = root / BUILD / "html" / "needs.json"
    if kept and previous_needs.exists():
        asked = {c: f for c, f in json.loads(previous_needs.read_text(encoding="utf-8")).items() if c in kept} | asked
    cache.atomic_write_text(json.dumps(asked, indent=1) + "\n", root / BUILD / "html" / "needs.json")
    text = json.dumps(record, indent=1) + "\n"
    cache.atomic_write_text(text, root / BUILD / "html" / "timings.json")
    cache.atomic_write_text(json.dumps(results, indent=1) + "\n", root / BUILD / "html" / "results.json")
    if cold and not kept and not failed and render:  # the README's table records cold, whole, passing builds
        cache.atomic_write_text(text, root / "timings" / f"{profile}.json")
    print(f"The book is at {(root / BUILD / 'html' / 'index.html').resolve()}; "
          f"its timing record is {BUILD / 'html' / 'timings.json'}")
    if failed:
        raise BuildFailed("chapter(s) failed: " + "; ".join(f"{name} ({why})" for name, why in failed.items()))
    return record


RENDER = "(the HTML)"
"""The name under which ``chapters_failed`` records a failed rendering by Jupyter Book."""
NOT_COMPUTED = "**[not computed: this chapter failed]**"
"""What a failed chapter's prose shows where a number it never glued would have stood."""
GLUE_ROLE = re.compile(r"\{glue(?::[a-z]+)?\}`([^`:]+)(?::[^`]*)?`")
"""MyST-NB's inline glue roles, e.g. ``{glue:text}`t1_count``` or ``{glue:text}`gap:.2f```."""


def _mark_not_computed(path: Path) -> None:
    """In an executed notebook whose execution failed, replace every glue role whose key no cell glued
    by :data:`NOT_COMPUTED`, so that the page renders and says what is missing."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    glued = {output.get("metadata", {}).get("scrapbook", {}).get("name")
             for cell in nb.cells if cell.cell_type == "code" for output in cell.get("outputs", [])}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = GLUE_ROLE.sub(lambda m: m.group(0) if m.group(1) in glued else NOT_COMPUTED, cell.source)
    nbformat.write(nb, path)


def _results(previous: Path, comparisons: Path, profile: str, kept: list[str]) -> dict[str, Any]:
    """results.json: every number a chapter compared with the paper, with the paper's value, ours, the
    tolerance and the verdict; the kept chapters' rows come from the previous build's file."""
    records = [json.loads(line) for line in comparisons.read_text(encoding="utf-8").splitlines()] \
        if comparisons.exists() else []
    rows = [r for r in records if r.get("record") != "claim"]
    decided = {r["claim"]: r for r in records if r.get("record") == "claim"}
    if kept and previous.exists():
        earlier = json.loads(previous.read_text(encoding="utf-8"))
        rows = [r for r in earlier["comparisons"] if r["chapter"] in kept] + rows
        decided = {c["key"]: c for c in earlier.get("claims", []) if c["chapter"] in kept and "cases" in c} | decided
    verdicts: dict[str, int] = {}
    for row in rows:
        verdicts[row["verdict"]] = verdicts.get(row["verdict"], 0) + 1
    return {"profile": profile, "verdicts": verdicts, "claims": _claims(decided), "comparisons": rows}


NOT_DECIDED = "not decided"
"""The verdict of a testable claim whose chapter did not decide it (the chapter failed before it could)."""


def _claims(decided: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every claim of :data:`intriguing.paper.CLAIMS`, in its order, with the verdict a chapter recorded,
    ``"not testable here"`` and the reason, or :data:`NOT_DECIDED`."""
    claims = []
    for claim in paper.CLAIMS:
        row = {"key": claim.key, "section": claim.section, "claim": claim.claim, "chapter": claim.chapter,
               "rule": claim.rule}
        if claim.not_testable:
            row |= {"verdict": "not testable here", "measurement": claim.not_testable}
        elif claim.key in decided:
            found = decided[claim.key]
            row |= {"verdict": found["verdict"], "cases": found["cases"], "measurement": found["measurement"],
                    "failing cases": found.get("failing cases", []), "unresolved cases": found.get("unresolved cases", [])}
        else:
            row |= {"verdict": NOT_DECIDED, "measurement": f"the {claim.chapter} chapter recorded no verdict"}
        claims.append(row)
    return claims


def claims_markdown(results: dict[str, Any], book_chapters: Collection[str]) -> str:
    """The intro's claims ledger from results.json: one line per claim of the paper, with its verdict and
    measurement, after a count of the verdicts. A decided claim links to the section of its chapter that
    decides it; another, to its chapter where ``book_chapters`` holds it."""
    claims = results["claims"]
    counts: dict[str, int] = {}
    for row in claims:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    said = ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    lines = [f"Profile `{results['profile']}`: {len(claims)} claims of the paper ({said}). Each verdict follows "
             "from the claim's rule (in `intriguing.paper.CLAIMS`, and in this build's `results.json`) applied "
             "to the measurement beside it.", "",
             "| claim | paper | verdict | measurement |", "|---|---|---|---|"]
    for row in claims:
        chapter = row["chapter"]
        link = (f"{{ref}}`{row['claim']} <{claim_label(chapter)}>`" if "cases" in row
                else f"[{row['claim']}]({chapter})" if chapter in book_chapters else row["claim"])
        lines.append(f"| {link} | {row['section']} | **{row['verdict']}** | {row['measurement']} |")
    return "\n".join(lines) + "\n"


def claim_label(chapter: str) -> str:
    """The MyST label of a chapter's section that decides its claims (``(claims-cross-model)=``)."""
    return "claims-" + chapter.replace("_", "-")


def summary_markdown(results: dict[str, Any]) -> str:
    """The intro's summary of results.json: per chapter and table, how many compared numbers are within
    tolerance, outside as a recorded deviation, and outside."""
    verdicts = ("within tolerance", "outside, a recorded deviation", "outside")
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for row in results["comparisons"]:
        cell = counts.setdefault((row["chapter"], row["table"]), dict.fromkeys(verdicts, 0))
        cell[row["verdict"]] += 1
    lines = [f"Profile `{results['profile']}`: every number a chapter compares with the paper, counted by verdict "
             "(each number, with the paper's value and the tolerance, is in this build's `results.json`).", "",
             "| chapter | table | " + " | ".join(verdicts) + " |", "|---|---|" + "---|" * len(verdicts)]
    for (chapter, table), cell in counts.items():
        lines.append(f"| {chapter} | {table} | " + " | ".join(str(cell[v]) for v in verdicts) + " |")
    total = {v: sum(c[v] for c in counts.values()) for v in verdicts}
    lines.append("| **all** | | " + " | ".join(f"**{total[v]}**" for v in verdicts) + " |")
    return "\n".join(lines) + "\n"


def _size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError  # pragma: no cover


def cache_info() -> list[dict[str, Any]]:
    """One row per kind of cached result: files, size, and the profiles they were made for."""
    root = cache.cache_dir()
    rows = []
    for kind in cache.kinds():
        entries = cache.index(kind)
        profiles = sorted({p for entry in entries for p in _profiles_of(entry["config"])})
        rows.append({"kind": kind, "files": len(entries),
                     "size": sum((root / kind / entry["file"]).stat().st_size for entry in entries),
                     "profiles": profiles or ["unknown"]})
    return rows


def make_bundle(profile_name: str | None, kinds: list[str], out: Path, needs: Path) -> dict[str, Any]:
    """``cache bundle``: the profile's cached results of ``kinds`` as a bundle in ``out``, each with the
    chapters that asked for it in the build whose ``needs.json`` is ``needs`` (if present)."""
    profile = get_profile(profile_name).name
    asked = json.loads(needs.read_text(encoding="utf-8")) if needs.exists() else None
    if "all" in kinds:
        kinds = [kind for kind in cache.RESULT_KINDS if kind in cache.kinds()]
    return bundle.make_bundle(out, profile, kinds or bundle.DEFAULT_KINDS, asked,
                              belongs=lambda config: profile in _profiles_of(config))


def pull(source: str | None, profile_name: str | None, chapter_names: list[str], dry_run: bool = False) -> dict[str, Any]:
    """``cache pull``: fetch what the named chapters (default: all) need from a bundle (with ``dry_run``, only
    say what that is); see :func:`intriguing.bundle.pull`."""
    from .artifacts import asked_for

    profile = get_profile(profile_name)
    return bundle.pull(source, profile.name, chapter_names, dry_run=dry_run,
                       asked_for=lambda kind, name, config: asked_for(kind, name, config, profile))


def _profiles_of(config: dict[str, Any]) -> list[str]:
    subset = config.get("train_subset", "missing")
    return [name for name, p in PROFILES.items() if p.train_subset == subset] or ["unknown"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m intriguing", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="execute chapters (default: all) and render the HTML",
                               description="Execute the named chapters with papermill, then render the HTML.")
    make.add_argument("--profile", default=None, help=f"one of {', '.join(PROFILES)} (default: $INTRIGUING_PROFILE "
                                                      "or full)")
    make.add_argument("--no-html", action="store_true", help="execute and record, but render no HTML")
    make.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapter names, e.g. blind_spots")
    store = commands.add_parser("cache", help="what is cached, or clear it",
                                description="The result cache at $INTRIGUING_CACHE (default ~/.cache/intriguing).")
    what = store.add_subparsers(dest="action", required=True)
    what.add_parser("info", help="each kind of cached result: files, size, profiles")
    clear = what.add_parser("clear", help="delete cached results")
    clear.add_argument("--kind", default=None, help="only this kind (a folder of the cache, e.g. attacks)")
    pack = what.add_parser("bundle", help="write cached results as a bundle others can pull",
                           description="Write a profile's cached results as a bundle (safetensors files, bundle.json, "
                                       "pooch's registry.txt) that `cache pull` fetches from a URL or folder.")
    pack.add_argument("--profile", default=None, help="whose results (default: $INTRIGUING_PROFILE or full)")
    pack.add_argument("--kind", action="append", default=[],
                      help="a kind to bundle (repeatable; default: networks; all: every kind of result the cache holds)")
    pack.add_argument("--needs", type=Path, default=BUILD / "html" / "needs.json",
                      help="the build's needs.json, recording which chapter asked for what (default: %(default)s)")
    pack.add_argument("out", type=Path, metavar="OUT", help="the bundle's folder")
    fetch = what.add_parser("pull", help="fetch precomputed results that chapters need (opt-in)",
                            description="Fetch, sha256-checked, the results the named chapters need and the cache "
                                        "lacks, from a bundle made by `cache bundle`. Nothing is downloaded otherwise.")
    fetch.add_argument("--from", dest="source", default=None,
                       help=f"the bundle's URL or folder (default: ${bundle.PRECOMPUTED_VAR})")
    fetch.add_argument("--profile", default=None, help="whose results (default: $INTRIGUING_PROFILE or full)")
    fetch.add_argument("--dry-run", action="store_true", help="say what would be fetched and its size; fetch nothing")
    fetch.add_argument("chapters", nargs="*", metavar="CHAPTER", help="only what these chapters need (default: all)")
    rerun = commands.add_parser("check-rerun", help="rerun chapters from a bundle of the cache, computing nothing",
                                description="Bundle the cache, pull each chapter's needs into an empty cache, execute "
                                            "the chapter with $INTRIGUING_NO_COMPUTE set, and compare what it glues "
                                            "with the run that filled the cache.")
    rerun.add_argument("--needs", type=Path, required=True, help="the run's $INTRIGUING_NEEDS log")
    rerun.add_argument("--glue", type=Path, required=True, help="the run's $INTRIGUING_GLUE log")
    rerun.add_argument("--workdir", type=Path, default=BUILD / "rerun",
                       help="for the bundle, the caches and the executed chapters (emptied first; default: %(default)s)")
    rerun.add_argument("--profile", default=None, help="the run's profile (default: $INTRIGUING_PROFILE or full)")
    rerun.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapter names (default: every one the run glued)")
    commands.add_parser("profiles", help="each profile's sizes and its measured build time",
                        description="Each profile's sizes, and the measured time of its last recorded cold build.")
    args = parser.parse_args(argv)

    try:
        if args.command == "build":
            build(args.profile, args.chapters, render=not args.no_html)
        elif args.command == "check-rerun":
            from .rerun import RerunMismatch, check_chapters

            try:
                checked = check_chapters(Path("."), args.needs, args.glue, args.workdir, args.profile,
                                         args.chapters or None)
            except RerunMismatch as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            print(checked.round(2).to_string())
            print(f"every chapter rerun from the bundle glued the run's values ({int(checked['glued'].sum())} compared)")
        elif args.command == "cache" and args.action == "info":
            rows = cache_info()
            print(f"cache: {cache.cache_dir()}")
            for row in rows:
                print(f"  {row['kind']:16s} {row['files']:5d} files {_size(row['size']):>10s}  "
                      f"profile(s): {', '.join(row['profiles'])}")
            print(f"  {'total':16s} {sum(r['files'] for r in rows):5d} files "
                  f"{_size(sum(r['size'] for r in rows)):>10s}")
            stray = cache.stray_files()
            if stray:
                print(f"  {len(stray)} temporary file(s) left by killed writes ({_size(sum(f.stat().st_size for f in stray))}); "
                      "`cache clear` removes them")
        elif args.command == "cache" and args.action == "bundle":
            manifest = make_bundle(args.profile, args.kind, args.out, args.needs)
            print(f"bundled {len(manifest['entries'])} result(s), {_size(manifest['bytes'])}, into {args.out}")
        elif args.command == "cache" and args.action == "pull":
            found = pull(args.source, args.profile, args.chapters, dry_run=args.dry_run)
            verb = "would fetch" if args.dry_run else "fetched"
            print(f"{verb} {len(found['fetched'])} ({_size(found['bytes'])}), already cached {len(found['present'])}")
            for path in found["not asked for"]:
                print(f"  not asked for by this code (another version's key): {path}")
        elif args.command == "cache":
            removed = cache.clear(args.kind)
            print(f"removed {removed} file(s) from {cache.cache_dir()}")
        else:
            for name, profile in PROFILES.items():
                print(profile.describe())
                record = Path("timings") / f"{name}.json"
                if record.exists():
                    measured = json.loads(record.read_text(encoding="utf-8"))
                    print(f"measured: {measured['wall_seconds'] / 60:.1f} min cold on {measured['device']} "
                          f"({measured['machine']}, {measured['torch_threads']} threads)")
                print()
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BuildFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
