#!/usr/bin/env bash
# The test command: sets up .venv if needed, runs ruff, builds the docs (mkdocs --strict: any
# warning fails the run), then pytest once per Keras backend (KERAS_BACKEND is read at import,
# so each backend gets its own process).
#   scripts/test.sh                 default suite (slow tests excluded)
#   scripts/test.sh --slow          only the tests marked slow
#   scripts/test.sh [--slow] ARGS   extra pytest arguments (paths, -k, -x, ...)
# PBASR_TEST_BACKENDS="jax torch" narrows the backends.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh || exit 1
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONDONTWRITEBYTECODE=1

mark="not slow"
if [ "${1:-}" = "--slow" ]; then mark="slow"; shift; fi

echo "[test] ruff check"
.venv/bin/ruff check . || exit 1

echo "[test] docs build (mkdocs build --strict)"
docs_site="$(mktemp -d)"
docs_start=$(date +%s)
# Not --quiet: it hides the warnings from the strict-mode count.
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict -d "$docs_site"
docs_rc=$?
rm -rf "$docs_site"
if [ $docs_rc -ne 0 ]; then
    echo "[test] docs build FAILED (mkdocs exit $docs_rc; warnings are errors)"
    exit 1
fi
echo "[test] docs built in $(( $(date +%s) - docs_start )) s, no warnings"

results=.test-results
rm -rf "$results" && mkdir -p "$results"
failed=0
start=$(date +%s)
for backend in ${PBASR_TEST_BACKENDS:-tensorflow jax torch}; do
    echo
    echo "================ KERAS_BACKEND=$backend ================"
    # Backend-agnostic tests (pure numpy math, the tf.data pipeline) run once, in the tensorflow pass.
    selection="$mark"
    [ "$backend" = tensorflow ] || selection="$mark and not backend_agnostic"
    KERAS_BACKEND=$backend .venv/bin/python -m pytest -m "$selection" \
        --junitxml="$results/$backend.xml" "$@"
    rc=$?
    # 5 = nothing selected in this pass (e.g. no slow test for a backend): not a failure.
    if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then
        echo "[test] backend $backend FAILED (pytest exit $rc)"
        failed=1
    fi
done
echo
echo "[test] total wall time $(( $(date +%s) - start )) s"
.venv/bin/python scripts/summarize_junit.py "$results"/*.xml || failed=1
exit $failed
