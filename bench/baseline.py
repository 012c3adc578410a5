"""The benchmark's baseline: a bare Bolt AsyncApp on the bot's server stack that only acks."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import uvicorn
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# The modal the bot opens for the bench's lines (`python -m bench.load` writes a fresh copy of it
# next to its results after each run of the bot), under the baseline's callback_id: the baseline's
# submissions then carry the same view and state as the bot's, so both apps get the same traffic.
# With a one-block modal of its own the baseline's submissions were a tenth of the bot's size: less
# for its Bolt to parse, and less for the load generator to encode and the simulator to fill in.
BOT_MODAL = Path(__file__).with_name("bot_modal.json")
CALLBACK_ID = "baseline"
# What Slack adds to a view it holds; a view to open carries none of it.
SLACK_VIEW_KEYS = frozenset(
    ("id", "team_id", "state", "hash", "app_id", "app_installed_team_id", "bot_id",
     "root_view_id", "previous_view_id", "external_id")
)  # fmt: skip


def modal_to_open(view: dict[str, Any]) -> dict[str, Any]:
    """A view as Slack holds it, as an app would open it again."""
    return {key: value for key, value in view.items() if key not in SLACK_VIEW_KEYS}


def bot_modal() -> dict[str, Any]:
    return {**json.loads(BOT_MODAL.read_text()), "callback_id": CALLBACK_ID}


STATIC_OPTIONS = [
    {"text": {"type": "plain_text", "text": "Acme Corp"}, "value": "lead_acme"},
    {"text": {"type": "plain_text", "text": "Globex Corporation"}, "value": "lead_globex"},
]


def build_baseline(token: str, signing_secret: str, slack_api_url: str) -> Starlette:
    """Same adapter, same routes as bot/transport/http.py; listeners that do the least Slack allows."""
    modal = bot_modal()
    bolt = AsyncApp(
        client=AsyncWebClient(token=token, base_url=slack_api_url), signing_secret=signing_secret
    )

    @bolt.command("/opportunity")
    async def command(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=modal)

    @bolt.view(CALLBACK_ID)
    async def submitted(ack: AsyncAck) -> None:
        await ack()

    @bolt.options("lead")
    async def options(ack: AsyncAck) -> None:
        await ack(options=STATIC_OPTIONS)

    handler = AsyncSlackRequestHandler(bolt)

    async def slack_events(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def readyz(_request: Request) -> Response:
        # Nothing to warm: bare Bolt asks Slack's auth.test on its first request instead.
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    app = build_baseline(
        os.environ["SLACK_BOT_TOKEN"],
        os.environ["SLACK_SIGNING_SECRET"],
        os.environ.get("SLACK_API_URL", "https://slack.com/api/"),
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
