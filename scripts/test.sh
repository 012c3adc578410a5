#!/usr/bin/env bash
# Installs the project with its test extras, at the locked versions, into .venv, then runs lint,
# types and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# The exact versions of requirements/test-lock.txt (hash-checked, wheels only; scripts/lock.sh
# refreshes it), then the bot itself without letting pip pick anything else.
.venv/bin/python -m pip install --quiet --require-hashes --only-binary :all: -r requirements/test-lock.txt
.venv/bin/python -m pip install --quiet --no-deps -e .
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy bot sandbox
# In parallel (pytest-xdist): the suite mostly waits on local servers, so two workers per core
# would do, but timing checks (acks, previews) stay honest at one per core.
.venv/bin/pytest -n "${PYTEST_WORKERS:-2}" "$@"
