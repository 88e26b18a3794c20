#!/usr/bin/env bash
# README command 1: set up, then animate the bundled synthetic sample outside ComfyUI through
# the same stage functions the nodes use (dispose_core/pipeline.py).
#   bash scripts/demo.sh                      # smoke run: tiny RANDOM models, the video is noise
#   bash scripts/demo.sh --models DIR         # real models from a ComfyUI models folder
#   bash scripts/demo.sh --out DIR ...        # output folder (default ./output/demo); see --help
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY=${PYTHON:-python3}
exec "$PY" -m dispose_core.demo "$@"
