#!/usr/bin/env bash
# Installs the project into .venv and runs the bot: for real when Slack and Close are configured
# (environment or .env), else the bundled demo against local simulators.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[postgres]'
configured() {
  [ -n "${!1:-}" ] || { [ -f .env ] && grep -qE "^$1=.+" .env && ! grep -qE "^$1=(xoxb-your|your-)" .env; }
}
if configured SLACK_BOT_TOKEN && configured CLOSE_API_KEY; then
  exec .venv/bin/python -m bot "$@"
fi
echo "Slack and Close are not configured (.env): running the demo against local simulators." >&2
exec .venv/bin/python -m bot demo
