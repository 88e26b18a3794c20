#!/usr/bin/env bash
# Installs everything the pack, its demo and its tests need into the current Python.
# torch comes first and pinned, so that no requirement can make pip pull a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install --quiet "torch==2.13.0"
fi
"$PY" -m pip install --quiet -r requirements.txt -r requirements-dev.txt
