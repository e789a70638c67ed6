#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs the Debian tools the tests use, makes
# .venv, installs the project with its test extra, lints (ruff, import-linter), then runs pytest (which fails on no
# tests collected, exit 5).
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages the tests run for real: prometheus (promtool and the server), chromium and
# chromium-driver (the browser test of the action confirmation pages), dovecot-imapd (the DMARC
# IMAP import test runs its own Dovecot on loopback).
missing=()
command -v promtool >/dev/null && command -v prometheus >/dev/null || missing+=(prometheus)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
[ -x /usr/sbin/dovecot ] || command -v dovecot >/dev/null || missing+=(dovecot-imapd)
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    # only the tools are needed: the tests start their own Prometheus and browser on loopback
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
.venv/bin/ruff check .
# the architecture: layers, independent adapters, pure parsers (contracts in pyproject.toml)
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest "$@"
