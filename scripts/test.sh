#!/usr/bin/env bash
# The README's test command (and .ci/run): install, run the library suite in this Python, then the
# ComfyUI suites (markers comfy, host, browser) inside a real ComfyUI for every archive in
# ../shared/comfy-host/archives (both versions), else in $COMFYUI_PATH, else they are skipped with
# one line. Extra arguments go to every pytest run. pytest's exit code 5 (no tests) is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh || exit 1
PY=${PYTHON:-python3}
COMFY_MARKERS="comfy or host or browser"
ARCHIVES=(../shared/comfy-host/archives/ComfyUI-*.tar.gz)
[[ -f ${ARCHIVES[0]} ]] || ARCHIVES=()
failed=0
summaries=()

# run_suite LABEL PYTHON PYTEST_ARGS...: one pytest run, its closing line kept for the summary
run_suite() {
  local label=$1 python=$2 log rc; shift 2
  log=$(mktemp)
  echo "=== scripts/test.sh: $label ===" 
  "$python" -m pytest tests "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  if [[ $rc -eq 5 ]]; then echo "scripts/test.sh: $label collected no tests - failing on purpose"; rc=1; fi
  [[ $rc -eq 0 ]] || failed=1
  summaries+=("$label: $(grep -E '(passed|failed|error|skipped|deselected|no tests ran).* in [0-9.]+s' "$log" | tail -1 | tr -d '=' | xargs) (exit $rc)")
  rm -f "$log"
}

comfy_python() {  # ComfyUI's interpreter for a checkout the user named
  local checkout=$1
  [[ -n ${COMFYUI_PYTHON:-} ]] && { echo "$COMFYUI_PYTHON"; return; }
  for venv in "$checkout/venv" "$checkout/.venv" "$checkout/../venv"; do
    [[ -x $venv/bin/python ]] && { echo "$venv/bin/python"; return; }
  done
  echo "$PY"
}

if [[ ${#ARCHIVES[@]} -gt 0 || -n ${COMFYUI_PATH:-} ]]; then
  run_suite "library" "$PY" -m "not ($COMFY_MARKERS)" "$@"
else
  run_suite "library (no ComfyUI: its tests are skipped)" "$PY" "$@"
fi
for archive in "${ARCHIVES[@]}"; do
  version=$(basename "$archive" .tar.gz)
  if host=$(bash scripts/comfy_host.sh "$archive"); then
    COMFYUI_PATH="$host/ComfyUI" COMFYUI_PYTHON="$host/venv/bin/python" \
      run_suite "$version" "$host/venv/bin/python" -m "$COMFY_MARKERS" "$@"
  else
    failed=1; summaries+=("$version: host build failed")
  fi
done
if [[ ${#ARCHIVES[@]} -eq 0 && -n ${COMFYUI_PATH:-} ]]; then
  run_suite "ComfyUI at $COMFYUI_PATH" "$(comfy_python "$COMFYUI_PATH")" -m "$COMFY_MARKERS" "$@"
fi

echo "=== scripts/test.sh summary ==="
printf '%s\n' "${summaries[@]}"
count() { printf '%s\n' "${summaries[@]}" | grep -oE "[0-9]+ $1" | awk '{n += $1} END {print n + 0}'; }
echo "total: $(count passed) passed, $(( $(count failed) + $(count error) )) failed, $(count skipped) skipped"
exit $failed
