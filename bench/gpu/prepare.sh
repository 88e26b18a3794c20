#!/usr/bin/env bash
# Build the carry folder of the one device call (bench/gpu/README.md), from a clean clone:
#   .gpu_carry/wheels/ours      wheels the device lacks for the pack (diffusers of requirements.txt, ...)
#   .gpu_carry/wheels/official  the official pipeline's pins (diffusers 0.27.0, huggingface_hub 0.25.2, ...)
#   .gpu_carry/ComfyUI-0.33.0.tar.gz
#   .gpu_carry/DisPose          lihxxx/DisPose at the pinned commit (never committed: no licence)
# Wheels are fetched from PyPI for the device's CPython 3.12 (x86-64 manylinux), as the device notes say.
#
#   bash bench/gpu/prepare.sh          # the carry folder; prints its size (limit 64 MiB with the tree)
#   bash bench/gpu/prepare.sh --cpu    # also the official environment on this machine (.official_env,
#                                      # a venv over the base python3's torch; nothing enters the base)
# Inputs: DISPOSE_GIT (a git dir holding lihxxx/DisPose; default: this workplace's mirror),
#         COMFY_ARCHIVE (default ../shared/comfy-host/archives/ComfyUI-0.33.0.tar.gz).
set -euo pipefail
cd "$(dirname "$0")/../.."
CARRY=.gpu_carry
PINNED=c38ab1329c756ab18fd0cdf8a49b915986ae37e6
DISPOSE_GIT=${DISPOSE_GIT:-/work/.mirror/lihxxx+DisPose/repo}
COMFY_ARCHIVE=${COMFY_ARCHIVE:-../shared/comfy-host/archives/ComfyUI-0.33.0.tar.gz}
DIFFUSERS=$(grep -E '^diffusers==' requirements.txt)
OURS=("$DIFFUSERS" importlib_metadata==8.7.0)
OFFICIAL=(diffusers==0.27.0 huggingface_hub==0.25.2 transformers==4.44.2 tokenizers==0.19.1 importlib_metadata==8.7.0)

rm -rf "$CARRY" && mkdir -p "$CARRY/wheels/ours" "$CARRY/wheels/official"
fetch() {  # fetch DIR PACKAGE==VERSION...: wheels for the device's Python, without their dependencies
  local dir=$1; shift
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dir" "$@"
}
fetch "$CARRY/wheels/ours" "${OURS[@]}"
fetch "$CARRY/wheels/official" "${OFFICIAL[@]}"
cp "$COMFY_ARCHIVE" "$CARRY/"
mkdir -p "$CARRY/DisPose"
# only the code: the snapshot lacks some asset blobs, and the comparator needs none of them
git --git-dir="$DISPOSE_GIT" archive "$PINNED" -- mimicmotion inference_ctrl.py constants.py configs requirements.txt \
  | tar -x -C "$CARRY/DisPose"
echo "$PINNED" > "$CARRY/DisPose/PINNED_COMMIT"

if [[ ${1:-} == --cpu ]]; then
  python3 -m venv --system-site-packages .official_env
  .official_env/bin/python -m pip install -q "${OFFICIAL[@]}"
  echo "official environment: DISPOSE_REF=$PWD/$CARRY/DisPose DISPOSE_REF_PYTHON=$PWD/.official_env/bin/python"
fi

tree_bytes=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
carry_bytes=$(du -sb "$CARRY" | cut -f1)
echo "carry folder $CARRY: $((carry_bytes / 1048576)) MiB ($carry_bytes bytes); with the tracked tree" \
     "$(((carry_bytes + tree_bytes) / 1048576)) MiB of the 64 MiB limit"
(( carry_bytes + tree_bytes < 64 * 1048576 )) || { echo "over the 64 MiB carry limit" >&2; exit 1; }
