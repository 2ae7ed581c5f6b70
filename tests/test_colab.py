"""Colab, simulated: a fresh virtual environment with Colab's preinstalled packages (the pinned working
set) and a stand-in ``google.colab`` module imported at the kernel's start, as on Colab. One chapter,
copied into an empty folder, is executed there with papermill, its Colab cell included: the cell
installs the library at the commit the build names (``git+file://`` of this repository at HEAD
(localhost) instead of GitHub), the data-only packages from the hash-pinned requirements file, and pulls from a
bundle. Nothing of the repository is on the path: the chapter must run from the installed package alone.

The bundle is the one ``$INTRIGUING_COLAB_BUNDLE`` names (``run_tests.sh`` passes the bundle its chapters were
rerun from): then the chapter must pull what it needs and run with ``$INTRIGUING_NO_COMPUTE`` set, training and
searching nothing, as a reader on Colab does. Without it, an empty bundle, and the chapter computes its results."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from intriguing import bundle, cache

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "spectral"  # small in the smoke profile, and it reads both data-only packages
pytestmark = pytest.mark.colab
COLAB_BUNDLE_VAR = "INTRIGUING_COLAB_BUNDLE"
PREINSTALLED = ("torch", "numpy", "scipy", "pandas", "matplotlib", "tqdm", "foolbox", "pillow", "pooch", "safetensors",
                "papermill", "ipykernel")


def sh(*args, **kwargs):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_a_chapters_colab_cell_installs_the_pinned_commit_and_the_chapter_runs(tmp_path):
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if commit.returncode != 0:
        pytest.skip("not a git checkout: there is no commit to pin")
    commit = commit.stdout.strip()

    venv = tmp_path / "colab"
    sh(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    sh(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", ROOT / "requirements.txt",
       *PREINSTALLED, "setuptools")
    fake = tmp_path / "fake"  # the stand-in for Colab's own module, imported at the kernel's start
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "__init__.py").write_text("")
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # noqa: F401\n")
    published = os.environ.get(COLAB_BUNDLE_VAR)
    source = Path(published).resolve() if published else tmp_path / "bundle"
    if not published:
        source.mkdir()
        (source / "bundle.json").write_text(json.dumps({"format": bundle.BUNDLE_FORMAT, "profile": "smoke",
                                                        "entries": []}))
        (source / "registry.txt").write_text("")

    folder = tmp_path / "chapter"
    folder.mkdir()
    shutil.copy(ROOT / "book" / f"{CHAPTER}.ipynb", folder)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(INTRIGUING_CACHE=str(tmp_path / "cache"), MPLBACKEND="Agg", PATH=f"{venv / 'bin'}:{env['PATH']}",
               PYTHONPATH=str(fake), IPYTHONDIR=str(tmp_path / "ipython"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop(cache.NO_COMPUTE_VAR, None)
    if published:
        env[cache.NO_COMPUTE_VAR] = "1"  # the pulled results must be all the chapter needs
    sh(python, "-m", "ipykernel", "install", "--prefix", venv, "--name", "python3")
    colab = {"package": f"intriguing @ git+file://localhost{ROOT}@{commit}", "data": str(ROOT / "requirements-data.txt"),
             "pull": f"--from {source} --profile smoke {CHAPTER}"}
    sh(python, "-m", "papermill", f"{CHAPTER}.ipynb", "executed.ipynb", "-p", "profile", "smoke",
       "-y", json.dumps({"colab": colab}), "-k", "python3", cwd=folder, env=env)
    executed = json.loads((folder / "executed.ipynb").read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert executed["metadata"]["papermill"]["parameters"]["profile"] == "smoke"
    installed = sh(python, "-m", "pip", "show", "-f", "intriguing", cwd=tmp_path)
    url = json.loads(sh(python, "-c", "import importlib.metadata as m; "
                                      "print(m.distribution('intriguing').read_text('direct_url.json'))", cwd=tmp_path))
    assert url["vcs_info"]["commit_id"] == commit and str(ROOT) in url["url"]  # the pinned commit, not a checkout
    assert "Location: " + str(venv) in installed
    printed = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    fetched = re.search(r"fetched (\d+) \(", printed)
    assert fetched and "already cached 0" in printed
    assert (int(fetched.group(1)) > 0) if published else printed.count("fetched 0 (0 B)") == 1
