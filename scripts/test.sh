#!/usr/bin/env bash
# Installs the project with its test extras into .venv, then runs lint, types and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,postgres]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy bot
.venv/bin/pytest "$@"
