#!/usr/bin/env bash
# Build the book: set up .venv, then `python -m intriguing build`: execute every chapter with
# papermill into _build/src and render _build/html with Jupyter Book, writing the timing record.
# Profile: $INTRIGUING_PROFILE or the first argument (default full); further arguments name chapters.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export PATH="$PWD/.venv/bin:$PATH"
export INTRIGUING_PROFILE="${1:-${INTRIGUING_PROFILE:-full}}"
shift || true
python -c "from intriguing.profiles import get_profile; print('Executing the book in', get_profile().describe())"
exec python -m intriguing build --profile "$INTRIGUING_PROFILE" "$@"
