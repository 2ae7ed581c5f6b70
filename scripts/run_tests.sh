#!/usr/bin/env bash
# Run the tests: the library's unit tests, then every chapter executed under nbval in the smoke
# profile, against a fresh cache so that the chapters really run. The numeric unit tests run first
# on a second BLAS kernel path (one thread, MKL limited to AVX2), so that a threshold that holds on
# one kernel path only fails here, not first on someone else's machine.
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
echo "=== numeric unit tests, second kernel path: OMP_NUM_THREADS=1 MKL_ENABLE_INSTRUCTIONS=AVX2"
OMP_NUM_THREADS=1 MKL_ENABLE_INSTRUCTIONS=AVX2 python -m pytest tests -q -p no:cacheprovider -m "not colab" \
  --ignore tests/test_notebooks.py --ignore tests/test_cli.py --ignore tests/test_colab.py --ignore tests/test_workflows.py
echo "=== all tests, and every chapter under nbval"
python -m pytest tests book --nbval-lax --nbval-current-env -p no:cacheprovider "$@"
