#!/usr/bin/env bash
# Build the book: set up .venv, execute every chapter with papermill into _build/src, render
# _build/html with Jupyter Book. Profile: $INTRIGUING_PROFILE or the first argument (default full).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PATH="$PWD/.venv/bin:$PATH"
export INTRIGUING_PROFILE="${1:-${INTRIGUING_PROFILE:-full}}"
python -c "from intriguing.profiles import get_profile; print('Executing the book in', get_profile().describe())"

build_start=$SECONDS
rm -rf _build/src
mkdir -p _build/src/book
# The timing record: every chapter and every training stage run appends an event here.
export INTRIGUING_TIMINGS="$PWD/_build/timing-events.jsonl"
rm -f "$INTRIGUING_TIMINGS"
cp _config.yml _toc.yml _build/src/
cp book/*.md book/*.bib _build/src/book/
notebooks=$(python - <<'PY'
import pathlib, yaml
toc = yaml.safe_load(open("_toc.yml"))
files = [toc["root"]] + [c["file"] for c in toc.get("chapters", [])]
print(" ".join(f for f in files if pathlib.Path(f + ".ipynb").exists()))
PY
)
for nb in $notebooks; do
  echo "=== executing $nb.ipynb"
  start=$SECONDS
  papermill "$nb.ipynb" "_build/src/$nb.ipynb" -p profile "$INTRIGUING_PROFILE" --cwd book --log-output
  echo "=== $nb.ipynb took $((SECONDS - start)) s"
  python -m intriguing.timing record chapter "$(basename "$nb")" $((SECONDS - start))
done
# The cell papermill injects with the profile is plumbing: hide it from the rendered page.
python - _build/src/book/*.ipynb <<'PY'
import sys, nbformat
for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(nb, path)
PY
jupyter-book build _build/src --path-output . --warningiserror --keep-going
python -m intriguing.timing summarise "$INTRIGUING_TIMINGS" _build/html/timings.json \
  --profile "$INTRIGUING_PROFILE" --wall $((SECONDS - build_start))
mkdir -p timings && cp _build/html/timings.json "timings/$INTRIGUING_PROFILE.json"
echo "The book is at $PWD/_build/html/index.html; its timing record is _build/html/timings.json"
echo "(also kept as timings/$INTRIGUING_PROFILE.json; python -m intriguing.timing readme timings/*.json remakes the README's table)"
