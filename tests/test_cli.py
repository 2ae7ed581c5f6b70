"""``python -m intriguing``: its commands, their help, and clear errors for what does not exist."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from intriguing import cache, cli

ROOT = Path(__file__).resolve().parents[1]


def run(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "intriguing", *args], capture_output=True, text=True, **kwargs)


@pytest.mark.parametrize("command", [[], ["build"], ["cache"], ["cache", "info"], ["cache", "clear"], ["profiles"]])
def test_every_command_has_help(command):
    done = run(*command, "--help")
    assert done.returncode == 0 and "usage: python -m intriguing" in done.stdout


def test_the_chapters_are_the_notebooks_of_the_table_of_contents():
    found = cli.chapters(ROOT)
    assert list(found)[:2] == ["networks", "units"] and found["blind_spots"] == "book/blind_spots"
    with pytest.raises(FileNotFoundError, match="run the build from the repository's root"):
        cli.chapters(ROOT / "book")


def test_unknown_chapters_and_profiles_are_named(tmp_path):
    done = run("build", "--profile", "smoke", "blindspots", cwd=ROOT)
    assert done.returncode == 2 and "unknown chapter(s) blindspots; choose from networks, units" in done.stderr
    done = run("build", "--profile", "huge", "networks", cwd=ROOT)
    assert done.returncode == 2 and "unknown profile 'huge'" in done.stderr


def test_one_chapter_needs_the_others_executed_in_the_same_profile(tmp_path):
    for name in ("_toc.yml", "_config.yml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "book").mkdir()
    for f in cli.chapters(ROOT).values():
        (tmp_path / f"{f}.ipynb").write_text("{}")
    with pytest.raises(ValueError, match=r"chapter\(s\) networks, units, cross_model.* have no executed copy"):
        cli.build("smoke", ["blind_spots"], root=tmp_path)


def test_cache_info_and_clear(isolated_cache, tiny, capsys):
    cache.cached("networks", "softmax1", {"train_subset": 10_000, "x": 1}, lambda: {"w": torch.zeros(3)})
    cache.cached("attacks", "softmax1-train-0", {"train_subset": None, "x": 2}, lambda: {"a": torch.zeros(3)})
    rows = {row["kind"]: row for row in cli.cache_info()}
    assert rows["networks"]["files"] == 1 and rows["networks"]["profiles"] == ["smoke"]
    assert rows["attacks"]["profiles"] == ["full"] and rows["attacks"]["size"] > 0
    assert cli.main(["cache", "info"]) == 0 and "networks" in capsys.readouterr().out
    assert cli.main(["cache", "clear", "--kind", "lunch"]) == 2
    assert "no cached kind 'lunch'" in capsys.readouterr().err
    assert cli.main(["cache", "clear", "--kind", "attacks"]) == 0
    assert [row["kind"] for row in cli.cache_info()] == ["networks"]
    assert cache.clear() == 1 and cli.cache_info() == []


def test_profiles_prints_each_profile_and_its_measured_time():
    done = run("profiles", cwd=ROOT)
    assert done.returncode == 0
    assert "profile 'smoke'" in done.stdout and "profile 'full'" in done.stdout
    assert "measured:" in done.stdout  # from timings/<profile>.json


def test_the_intros_summary_counts_each_verdict_per_table():
    rows = [{"chapter": "networks", "table": "Table 1", "verdict": v}
            for v in ["within tolerance"] * 10 + ["outside, a recorded deviation"] * 2]
    rows += [{"chapter": "cross_model", "table": "Table 2", "verdict": "outside"}]
    text = cli.summary_markdown({"profile": "full", "comparisons": rows})
    assert "| networks | Table 1 | 10 | 2 | 0 |" in text
    assert "| cross_model | Table 2 | 0 | 0 | 1 |" in text
    assert "| **all** | | **10** | **2** | **1** |" in text


def _notebook(*cells):
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    params = nbformat.v4.new_code_cell("profile = None\nrepository = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_markdown_cell(c[3:]) if c.startswith("md:") else nbformat.v4.new_code_cell(c)
                           for c in cells]
    return nb


def test_a_chapter_failing_after_its_first_check_still_gives_a_rendered_book_and_fresh_records(tmp_path, isolated_cache):
    """The real Jupyter Book on a two-chapter book whose second chapter fails before its last glue cell."""
    import nbformat

    (tmp_path / "_config.yml").write_text("title: tiny\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: 'off'\n"
                                          "repository:\n  url: https://github.com/example/tiny\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/good\n  - file: book/bad\n")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Tiny\n\n```{include} claims_ledger.md\n```\n\n"
                                                "```{include} results_summary.md\n```\n")
    glue = "from intriguing import plots\n"
    nbformat.write(_notebook("md:# Good\n\nThe answer is {glue:text}`answer`.", glue + "plots.glue('answer', 42)"),
                   tmp_path / "book" / "good.ipynb")
    nbformat.write(_notebook("md:# Bad\n\nFirst {glue:text}`first`, then {glue:text}`later:.2f` and {glue:text}`last`.",
                             glue + "plots.glue('first', 7)", "raise AssertionError('the first check failed')",
                             glue + "plots.glue('later', 2.5)\nplots.glue('last', 'x')"),
                   tmp_path / "book" / "bad.ipynb")
    (tmp_path / "_build" / "html").mkdir(parents=True)
    (tmp_path / "_build" / "html" / "results.json").write_text('{"stale": true}')  # an earlier build's

    with pytest.raises(cli.BuildFailed, match=r"bad \(AssertionError: the first check failed\)"):
        cli.build("smoke", [], root=tmp_path)
    html = tmp_path / "_build" / "html" / "book"
    assert "The answer is" in (html / "good.html").read_text() and "42" in (html / "good.html").read_text()
    bad = (html / "bad.html").read_text()
    assert bad.count(cli.NOT_COMPUTED.strip("*")) == 2 and "First" in bad and "7" in bad
    assert "the first check failed" in bad  # the failing cell's error, in place
    for record in ("timings.json", "results.json"):
        assert json.loads((tmp_path / "_build" / "html" / record).read_text())["chapters_failed"] == {
            "bad": "AssertionError: the first check failed"}
    assert not (tmp_path / "timings" / "smoke.json").exists()  # a failed build is not the profile's record
    peak = json.loads((tmp_path / "_build" / "html" / "timings.json").read_text())["peak_process_memory_mib"]
    assert 20 < peak < 8192  # a kernel that imported torch, at least
    claims = json.loads((tmp_path / "_build" / "html" / "results.json").read_text())["claims"]
    assert {c["verdict"] for c in claims} == {cli.NOT_DECIDED, "not testable here"}  # no chapter here decides one
    assert "not decided" in (tmp_path / "_build" / "html" / "book" / "intro.html").read_text()


def test_a_build_outside_the_repository_root_says_so(tmp_path):
    done = run("build", "--profile", "smoke", cwd=tmp_path)
    assert done.returncode == 2 and "run the build from the repository's root" in done.stderr


def test_an_empty_profile_is_an_error_not_the_full_profile():
    done = run("build", "--profile", "", "networks", cwd=ROOT)
    assert done.returncode == 2 and "the profile is empty" in done.stderr


def test_cache_clear_with_an_empty_cache_variable_deletes_nothing(tmp_path):
    import os

    (tmp_path / ".git").mkdir()
    (tmp_path / "src").mkdir()
    done = run("cache", "clear", cwd=tmp_path, env={**os.environ, "INTRIGUING_CACHE": ""})
    assert done.returncode == 2 and "INTRIGUING_CACHE is set but empty" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".git", "src"]


def test_cache_info_reports_the_temporary_files_of_killed_writes(isolated_cache, capsys):
    cache.cached("networks", "softmax1", {"x": 1}, lambda: {"w": torch.zeros(3)})
    (isolated_cache / "networks" / ".softmax1-0123.pt.999.tmp").write_bytes(b"half")
    assert cli.main(["cache", "info"]) == 0
    assert "1 temporary file(s) left by killed writes" in capsys.readouterr().out
