#!/usr/bin/env bash
# Creates .venv inside the repository (if missing) and installs the package with the
# CPU test stack and the docs tools. Re-runs are cheap: the install is skipped while
# pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "[bootstrap] creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
stamp=.venv/.pbasr-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[bootstrap] installing keras_pbasr[test,docs] into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    # torch is pinned to the CPU wheel; a bare `torch` would pull a multi-GB CUDA build.
    .venv/bin/python -m pip install -q -e ".[test,docs]"
    echo "$want" > "$stamp"
fi
