#!/usr/bin/env bash
# The main job: sets up .venv if needed, then runs the end-to-end demo on the default backend.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export TF_CPP_MIN_LOG_LEVEL=2
# Options (e.g. --out DIR, --overwrite, --quick, --warmup-steps N) pass through to the demo.
.venv/bin/python examples/demo.py "$@"
