#!/usr/bin/env bash
# Run the demo on a fresh machine: embedded PostgreSQL + built-in mailcow simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/mailcow-grafana demo "$@"
