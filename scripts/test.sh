#!/usr/bin/env bash
# Set up .venv with the test extras and run the default test suite (slow tests excluded).
# Extra arguments go to pytest, e.g. scripts/test.sh -m slow  or  scripts/test.sh tests/ingest
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev,gpu,ui
export HF_HUB_OFFLINE=1 GPTQMODEL_CPU_WORKERS="${GPTQMODEL_CPU_WORKERS:-2}"
if [ "$#" -eq 0 ]; then set -- -m "not slow"; fi
exec .venv/bin/python -m pytest "$@"
