#!/usr/bin/env bash
# Create ./.venv and install rag into it (editable) with the given extras (default: ui).
#   scripts/setup.sh            # the app: CLI + Gradio chat
#   scripts/setup.sh dev,gpu,ui # everything the tests need
# torch is installed first and pinned to 2.13.0: on this project's machines that resolves to a
# local CPU build; elsewhere set RAG_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu so a
# machine without a GPU never downloads several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-ui}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $($python --version)" >&2
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" ${RAG_TORCH_INDEX_URL:+--index-url "$RAG_TORCH_INDEX_URL"} "torch==2.13.0"
echo "Installing rag[$extras] into .venv" >&2
"${pip[@]}" -e ".[$extras]"
