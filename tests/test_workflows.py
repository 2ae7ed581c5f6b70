"""The GitHub workflows: valid for actionlint, and running what the README says."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = shutil.which("actionlint") or str(Path(sys.executable).with_name("actionlint"))  # requirements.txt


def test_the_workflows_pass_actionlint():
    assert [p.name for p in WORKFLOWS] == ["book.yml", "tests.yml"]
    done = subprocess.run([ACTIONLINT, *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  t:\n    steps:\n      - run: echo ${{ matrix.nothing }}\n")
    done = subprocess.run([ACTIONLINT, str(broken)], capture_output=True, text=True)
    assert done.returncode != 0 and "runs-on" in done.stdout


def test_the_workflows_run_the_readmes_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tests = yaml.safe_load((ROOT / ".github/workflows/tests.yml").read_text(encoding="utf-8"))
    book = (ROOT / ".github/workflows/book.yml").read_text(encoding="utf-8")
    assert "bash scripts/run_tests.sh" in readme and "bash scripts/build_book.sh" in readme
    assert any(step.get("run") == "bash scripts/run_tests.sh" for step in tests["jobs"]["tests"]["steps"])
    assert 'bash scripts/build_book.sh "$PROFILE"' in book
    assert '["self-hosted", "gpu"]' in book and "~/.cache/intriguing" in book
    assert "_build/html/timings.json" in book and "publish_branch: gh-pages" in book


def test_the_release_the_book_publishes_is_the_one_colab_pulls_from():
    book = (ROOT / ".github/workflows/book.yml").read_text(encoding="utf-8")
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    pattern = config["repository"]["precomputed"]
    assert pattern == config["repository"]["url"] + "/releases/download/results-{commit}"
    assert "tag_name: results-${{ github.sha }}" in book
    assert "cache bundle --profile full --kind all _build/bundle" in book and "files: _build/bundle/*" in book
