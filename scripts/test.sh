#!/usr/bin/env bash
# The README's test command: install, then run the whole suite.
# pytest's exit code 5 ("no tests collected") is turned into a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh || exit 1
PY=${PYTHON:-python3}
"$PY" -m pytest tests "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "scripts/test.sh: pytest collected no tests - failing on purpose" >&2
  exit 1
fi
exit "$rc"
