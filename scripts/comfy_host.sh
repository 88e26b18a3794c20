#!/usr/bin/env bash
# Build (once) a CPU-only ComfyUI test host from a source archive and print its folder.
#
#   bash scripts/comfy_host.sh ../shared/comfy-host/archives/ComfyUI-0.33.0.tar.gz
#
# The host is ../shared/comfy-host/setup.sh --browser (ComfyUI, its venv with CPU torch, Debian
# chromium + playwright) plus this pack's pinned requirements in that venv, so the pack runs in it
# as in a user's ComfyUI. It is cached under $DISPOSE_HOST_CACHE (default ~/.cache/comfyui-dispose)
# in a folder named after the archive's version and hash: a changed archive builds a new host,
# an unchanged one is reused (setup.sh itself redoes only steps whose inputs changed).
set -euo pipefail
archive="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
repo="$(cd "$(dirname "$0")/.." && pwd)"
setup="$(dirname "$archive")/../setup.sh"
version="$(basename "$archive" .tar.gz)"; version="${version#ComfyUI-}"
hash="$(sha256sum "$archive" | cut -c1-16)"
host="${DISPOSE_HOST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/comfyui-dispose}/comfy-host-$version-$hash"
log="$host.log"
mkdir -p "$(dirname "$host")"
echo "[comfy_host] ComfyUI $version -> $host (log $log)" >&2
COMFY_SNAPSHOT="$archive" COMFY_HOST="$host" bash "$setup" --browser > "$log" 2>&1 \
  || { tail -30 "$log" >&2; echo "[comfy_host] setup.sh failed for $archive" >&2; exit 1; }
want="$(cat "$repo/requirements.txt" "$repo/requirements-dev.txt" | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$host/.stamps/dispose-requirements" 2>/dev/null)" != "$want" ]]; then
  echo "[comfy_host] installing the pack's requirements into $host/venv" >&2
  "$host/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      -r "$repo/requirements.txt" -r "$repo/requirements-dev.txt" >> "$log" 2>&1 \
    || { tail -30 "$log" >&2; exit 1; }
  echo "$want" > "$host/.stamps/dispose-requirements"
fi
echo "$host"
