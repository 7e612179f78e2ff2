#!/usr/bin/env bash
# Set up, ingest the demo documents in data/demo, and show the service answering from them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh ui
export HF_HUB_OFFLINE=1
.venv/bin/rag ingest data/demo
.venv/bin/rag sources
echo
echo '$ rag search "What did Lincoln say the world will not remember?" -k 2'
.venv/bin/rag search "What did Lincoln say the world will not remember?" -k 2
