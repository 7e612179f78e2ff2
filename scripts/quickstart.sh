#!/usr/bin/env bash
# Set up, ingest the demo PDFs in data/demo, show one answer, then serve the chat on
# http://127.0.0.1:7860 (offline; Ctrl-C stops it). Extra arguments go to `rag serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh ui
export HF_HUB_OFFLINE=1
.venv/bin/rag ingest data/demo
echo
echo '$ rag ask "What did Lincoln say the world will not remember?"'
.venv/bin/rag ask "What did Lincoln say the world will not remember?"
echo
exec .venv/bin/rag serve "$@"
