#!/usr/bin/env bash
# Run the tests: the library's unit tests, then every chapter executed under nbval in the smoke
# profile, against a fresh cache so that the chapters really run, then every chapter again from a
# bundle of that cache pulled into an empty cache, computing nothing, and glueing the same values.
# The numeric unit tests run first on a second BLAS kernel path (one thread, MKL limited to AVX2), so
# that a threshold that holds on one kernel path only fails here, not first on someone else's machine;
# the tests of files, caches, bundles, the command line and the workflows compare no computed floats
# and run once.
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
  --ignore tests/test_notebooks.py --ignore tests/test_cli.py --ignore tests/test_colab.py --ignore tests/test_workflows.py \
  --ignore tests/test_bundle.py --ignore tests/test_cache.py --ignore tests/test_rerun.py --ignore tests/test_data.py \
  --ignore tests/test_citation.py --ignore tests/test_paper.py --ignore tests/test_timing.py --ignore tests/test_hardware.py
echo "=== all tests but Colab's (it runs last, on the chapters' bundle)"
python -m pytest tests -p no:cacheprovider -m "not colab" "$@"
echo "=== every chapter under nbval, recording what it asks the cache for and what it glues"
logs="$PWD/_build/test-logs"
rm -rf "$logs" && mkdir -p "$logs"
for notebook in book/*.ipynb; do
  INTRIGUING_CHAPTER="$(basename "$notebook" .ipynb)" INTRIGUING_NEEDS="$logs/needs.jsonl" \
    INTRIGUING_GLUE="$logs/glue.jsonl" python -m pytest "$notebook" --nbval-lax --nbval-current-env -p no:cacheprovider
done
echo "=== every chapter again from a bundle of those results, pulled into an empty cache, computing nothing"
python -m intriguing check-rerun --needs "$logs/needs.jsonl" --glue "$logs/glue.jsonl" --workdir _build/test-rerun
echo "=== Colab, simulated: a chapter pulls its results from that bundle and runs computing nothing"
INTRIGUING_COLAB_BUNDLE=_build/test-rerun/bundle python -m pytest tests/test_colab.py -p no:cacheprovider
