#!/usr/bin/env bash
# Create .venv (once) and install the pinned working set, the data-only packages, the tools the tests
# use without their clashing pins, and the library.
# Reinstalls only when requirements*.txt or pyproject.toml change.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
stamp=".venv/.installed-$(cat requirements.txt requirements-data.txt requirements-tools.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "Installing the environment into .venv (first run only)..."
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-data.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-tools.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
