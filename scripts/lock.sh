#!/usr/bin/env bash
# Refreshes the locks that scripts/run.sh, scripts/test.sh and CI install from: pyproject.toml's
# ranges resolved to exact versions, with hashes, for CPython 3.11 on Linux x86_64.
#   requirements/test-lock.txt  the bot with its `postgres` and `test` extras (test.sh, CI)
#   requirements/lock.txt       the bot with its `postgres` extra (run.sh), at the same versions
# Versions already locked are kept unless pyproject.toml rules them out; to move on, pass uv's
# options: `scripts/lock.sh --upgrade` (everything) or `--upgrade-package httpx`.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
tools="${XDG_CACHE_HOME:-$HOME/.cache}/close-opportunity-bot/uv-$UV_VERSION"
if [ ! -x "$tools/bin/uv" ]; then
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
compile() {
  "$tools/bin/uv" pip compile pyproject.toml --quiet --generate-hashes \
    --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
    --custom-compile-command scripts/lock.sh "$@"
}
compile --extra postgres --extra test --output-file requirements/test-lock.txt "$@"
# The runtime lock is a subset of the test lock: what runs is what was tested.
compile --extra postgres --constraint requirements/test-lock.txt \
  --output-file requirements/lock.txt "$@"
