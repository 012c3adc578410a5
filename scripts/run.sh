#!/usr/bin/env bash
# Installs the project into .venv and runs the bot: for real when Slack and Close are configured
# (environment or .env), else the bundled demo against local simulators.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# The exact versions of requirements/lock.txt (hash-checked, wheels only; scripts/lock.sh
# refreshes it), then the bot itself without letting pip pick anything else.
.venv/bin/python -m pip install --quiet --require-hashes --only-binary :all: -r requirements/lock.txt
.venv/bin/python -m pip install --quiet --no-deps -e .
configured() {
  [ -n "${!1:-}" ] || { [ -f .env ] && grep -qE "^$1=.+" .env && ! grep -qE "^$1=(xoxb-your|your-)" .env; }
}
if configured SLACK_BOT_TOKEN && configured CLOSE_API_KEY; then
  exec .venv/bin/python -m bot "$@"
fi
echo "Slack and Close are not configured (.env): running the demo against local simulators." >&2
exec .venv/bin/python -m bot demo
