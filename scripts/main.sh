#!/usr/bin/env bash
# The main job: sets up .venv if needed, then fine-tunes realesrgan_x4plus with PBaSR and with
# unified training and compares them (examples/demo.py) on KERAS_BACKEND (tensorflow, jax or torch).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export TF_CPP_MIN_LOG_LEVEL=2
# Options (e.g. --out DIR, --overwrite, --quick, --gan-steps N) pass through to the demo.
.venv/bin/python examples/demo.py "$@"
