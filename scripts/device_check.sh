#!/usr/bin/env bash
# The prepared GPU check: at most 8 minutes on one CUDA GPU, run as one command wherever a GPU is lent.
#
#   bash scripts/device_check.sh [OUT]
#
# 1. the CUDA tests (tests/test_cuda.py), and the phase and adversarial-training primitives' tests, on the GPU;
# 2. the smoke build's chapters, executed on the GPU without rendering HTML (python -m intriguing build --no-html);
# 3. the search's calls, operations, host reads and time on 1,000 test images of the smoke N100-100-10 (the book's
#    search and the pools', each backtracking; benchmarks/search_variants.py);
# 4. a timed slice of the full adversarial-training chapter: one stack of 5 networks with pools at every layer
#    (1 epoch without pools, 1 with), a stack of 1, the searches together and one network at a time, and the
#    chapter's time extrapolated from those rates (benchmarks/adversarial_phases.py --chapter).
# It writes timings/gpu-<device>.json (and copies it and the logs to OUT, default $OUT, when set).
#
# Where the machine has no package registry, the Python packages it lacks travel as wheels in .whl/ (see
# the README); they are installed into /tmp/site. Each step has its own time limit, so that one slow step
# leaves the others their time.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/device-check}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg GIT_PYTHON_REFRESH=quiet
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  export PATH="/tmp/site/bin:$PATH"
elif [ -x .venv/bin/python ]; then
  export PATH="$PWD/.venv/bin:$PATH"
fi
python=python3
command -v python >/dev/null && python=python
name=$($python -c "import torch; print(torch.cuda.get_device_name(0).replace(' ', '-') if torch.cuda.is_available() else 'none')")
if [ "$name" = none ]; then
  echo "no CUDA GPU: nothing to check" >&2
  exit 2
fi
export INTRIGUING_CACHE=/tmp/device-check-cache
rm -rf "$INTRIGUING_CACHE"
started=$(date +%s)
declare -A status seconds

step() {  # step NAME LIMIT_SECONDS COMMAND...
  local step_name=$1 limit=$2
  shift 2
  local began
  began=$(date +%s)
  echo "=== $step_name (limit ${limit} s)"
  timeout "$limit" "$@" >"$out/$step_name.log" 2>&1
  status[$step_name]=$?
  seconds[$step_name]=$(($(date +%s) - began))
  tail -n 25 "$out/$step_name.log"
  echo "=== $step_name: exit ${status[$step_name]} after ${seconds[$step_name]} s"
}

step cuda-tests 70 $python -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_phases.py tests/test_adversarial_training.py
step smoke-build 260 $python -m intriguing build --profile smoke --no-html
step search-overhead 40 $python benchmarks/search_variants.py --profile smoke --networks N100-100-10 --repeats 1 \
  --json "$out/search-overhead.json"
step chapter-slice 110 $python benchmarks/adversarial_phases.py --profile full --networks 5 --epochs 1 --warm-epochs 1 \
  --compare-stacked --chapter --json "$out/chapter-slice.json"

mkdir -p timings
record="timings/gpu-$name.json"
$python - "$record" "$out" "$started" <<PY
import json, re, sys, time
from pathlib import Path

record, out, started = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
steps = {"cuda-tests": (${status[cuda-tests]}, ${seconds[cuda-tests]}), "smoke-build": (${status[smoke-build]}, ${seconds[smoke-build]}),
         "search-overhead": (${status[search-overhead]}, ${seconds[search-overhead]}),
         "chapter-slice": (${status[chapter-slice]}, ${seconds[chapter-slice]})}
found = {"device": "$name", "date": time.strftime("%Y-%m-%d"), "wall_seconds": round(time.time() - started),
         "steps": {name: {"exit": code, "seconds": s} for name, (code, s) in steps.items()}}
smoke = Path("_build/html/timings.json")
if smoke.exists() and steps["smoke-build"][0] == 0:
    found["smoke_build"] = json.loads(smoke.read_text())
log = (out / "smoke-build.log").read_text(errors="replace") if (out / "smoke-build.log").exists() else ""
found["smoke_chapters_seconds"] = {m[0]: int(m[1]) for m in re.findall(r"=== (\w+) took (\d+) s", log)}
overhead = out / "search-overhead.json"
if overhead.exists():
    found["search_overhead"] = json.loads(overhead.read_text())
slice_ = out / "chapter-slice.json"
if slice_.exists():
    found["chapter_slice"] = json.loads(slice_.read_text())
record.write_text(json.dumps(found, indent=1) + "\n")
(out / record.name).write_text(record.read_text())
print(f"wrote {record}")
PY
failed=0
for s in cuda-tests smoke-build search-overhead chapter-slice; do [ "${status[$s]}" = 0 ] || failed=1; done
exit $failed
