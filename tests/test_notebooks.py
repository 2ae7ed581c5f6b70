"""The book's notebooks: committed without outputs, parameterised, in the table of contents, each with its
chapter module, importing only what a notebook may import, with prose numbers glued rather than typed."""

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
CHAPTER_MODULES = sorted(p.stem for p in (ROOT / "src" / "intriguing" / "chapters").glob("*.py")
                         if p.stem != "__init__")
ALLOWED = {"plots", "paper", "profiles"}
HIDDEN = "remove-cell"


def cells(path, kind="code"):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == kind]


def code_without_magics(cell) -> str:
    lines = "".join(cell["source"]).splitlines()
    magic = ("%", "!")  # IPython's line magics and shell escapes
    return "\n".join(line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(magic) else line
                     for line in lines)


def test_there_are_chapters():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    dirty = [i for i, c in enumerate(cells(path)) if c["outputs"] or c["execution_count"]]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_has_a_hidden_profile_parameter(path):
    params = [c for c in cells(path) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and "profile = None" in "".join(params[0]["source"])
    assert HIDDEN in params[0]["metadata"]["tags"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_cell_is_hidden_and_installs_the_commit_the_build_names(path):
    colab = [c for c in cells(path) if "google.colab" in "".join(c["source"])]
    assert len(colab) == 1 and HIDDEN in colab[0].get("metadata", {}).get("tags", [])
    source = "".join(colab[0]["source"])
    assert '%pip install -q "{package}"' in source  # intriguing @ git+<repository>@<commit>
    assert '--require-hashes -r "{data}"' in source and "cache pull {pull}" in source
    params = [c for c in cells(path) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert "colab = None" in "".join(params[0]["source"])
    # The repository is named in _config.yml only: no notebook carries a copy of it.
    assert "github.com" not in path.read_text()


def test_every_notebook_is_in_the_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = {toc["root"]} | {c["file"] for c in toc["chapters"]}
    assert {f"book/{p.stem}" for p in NOTEBOOKS} <= listed
    assert all((ROOT / f).with_suffix(".md").exists() or (ROOT / f).with_suffix(".ipynb").exists() for f in listed)


def test_every_chapter_notebook_has_a_chapter_module_and_the_reverse():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    notebooks = sorted(Path(c["file"]).name for c in toc["chapters"] if (ROOT / c["file"]).with_suffix(".ipynb").exists())
    assert notebooks == CHAPTER_MODULES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_imports_only_its_chapter_module_plots_paper_and_profiles(path):
    imported = set()
    for cell in cells(path):
        for node in ast.walk(ast.parse(code_without_magics(cell))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("intriguing"):
                names = [node.module] if node.module != "intriguing" else [f"intriguing.{a.name}" for a in node.names]
                if node.module == "intriguing.chapters":
                    names = [f"intriguing.chapters.{a.name}" for a in node.names]
                imported.update(names)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names if a.name.startswith("intriguing"))
    allowed = {f"intriguing.{m}" for m in ALLOWED} | {f"intriguing.chapters.{path.stem}"}
    assert imported and imported <= allowed, imported - allowed


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_prose_is_not_built_in_code(path):
    built = [i for i, c in enumerate(cells(path)) if "Markdown(" in "".join(c["source"])]
    assert not built, f"{path.name}: cells {built} build prose in code; glue the numbers into markdown instead"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_glued_names_in_prose_are_glued_in_code(path):
    prose = "".join("".join(c["source"]) for c in cells(path, "markdown"))
    used = {m.split(":")[0] for m in re.findall(r"\{glue:(?:text|md)\}`([^`]+)`", prose)}
    code = "".join("".join(c["source"]) for c in cells(path))
    glued = set(re.findall(r"glue\(\s*[\"']([A-Za-z0-9_]+)[\"']", code))
    assert used <= glued, f"{path.name}: prose uses unglued names {sorted(used - glued)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_opens_with_what_the_chapter_finds(path):
    markdown = cells(path, "markdown")
    assert "What this chapter finds" in "".join(markdown[0]["source"]) + "".join(markdown[1]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_code_line_is_too_long_to_render(path):
    long = [line for c in cells(path) for line in "".join(c["source"]).splitlines() if len(line) > 88]
    assert not long, long


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_tables_of_text_are_shown_whole(path):
    """pandas cuts a cell's text at 50 characters in a notebook; tables that hold sentences go through
    plots.table, which shows them whole."""
    code = "\n".join("".join(c["source"]) for c in cells(path))
    for call in ("deviation_table(", "chapter.deviations(", "pool_search_cost(", "decide_claims("):
        for line in code.splitlines():
            assert call not in line or "plots.table(" in line, f"{path.name}: {line.strip()}"
