#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: makes .venv, installs the project with its
# test extra, lints, then runs pytest (which fails on no tests collected, exit 5).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
