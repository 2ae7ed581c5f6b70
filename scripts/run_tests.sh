#!/usr/bin/env bash
# Run the tests: the library's unit tests, then every chapter executed under nbval in the smoke
# profile, against a fresh cache so that the chapters really run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PATH="$PWD/.venv/bin:$PATH"
export INTRIGUING_PROFILE=smoke
export INTRIGUING_CACHE="${INTRIGUING_TEST_CACHE:-$PWD/_build/test-cache}"
rm -rf "$INTRIGUING_CACHE"
export MPLBACKEND=Agg
echo "=== ruff"; ruff check src tests benchmarks
echo "=== mypy"; mypy
python -m pytest tests book --nbval-lax --nbval-current-env -p no:cacheprovider "$@"
