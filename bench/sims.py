"""The Slack and Close simulators in a process of their own for the load benchmark, with a control API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import sys
from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import blockkit
from sandbox.close_sim import CloseSimulator
from sandbox.server import start_server
from sandbox.slack_sim import Call, RejectedAck, SlackSimulator

# The sandbox's obviously fake credentials (as in sandbox.stack, which imports the whole bot).
BOT_TOKEN = "xoxb-sandbox-bot-token"
SIGNING_SECRET = "sandbox-signing-secret"
CLOSE_API_KEY = "api_sandbox.closekey"

# Object ids in a path (lead_…, oppo_…) fold into one endpoint, as in the Close client.
_ID_SEGMENT = re.compile(r"/[a-z]+_[A-Za-z0-9]+(?=/)")


class BenchSlack(SlackSimulator):
    """The Slack simulator, keeping counters and a trigger -> view index instead of a call log.

    A 60 s run makes tens of thousands of calls; the benchmark needs only when each modal
    opened and was first updated, and how many calls of each method were made.
    """

    def __init__(self) -> None:
        super().__init__(bot_token=BOT_TOKEN)
        self.trigger_ttl = 3.0
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.opened: dict[str, tuple[str, float]] = {}  # trigger_id -> (view_id, at)
        self.first_update: dict[str, float] = {}  # view_id -> at
        self._waiters: dict[str, asyncio.Event] = {}

    def reset_counts(self) -> None:
        self.counts.clear()
        self.errors.clear()

    async def _record(self, call: Call) -> None:
        self.counts[call.method] += 1
        if not call.ok:
            self.errors[f"{call.method}:{call.response.get('error')}"] += 1
            return
        if call.method == "views.open":
            trigger_id = str(call.params.get("trigger_id"))
            view_id = str(call.response["view"]["id"])
            self.opened[trigger_id] = (view_id, call.at)
            self._notify(trigger_id)
        elif call.method == "views.update":
            view_id = str(call.response["view"]["id"])
            if view_id not in self.first_update:
                self.first_update[view_id] = call.at
                self._notify(view_id)

    def _notify(self, key: str) -> None:
        event = self._waiters.pop(key, None)
        if event is not None:
            event.set()

    async def wait_key(self, key: str, ready: Any, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until `ready()` holds; it becomes true only when `key` is notified."""
        if ready():
            return True
        event = self._waiters.setdefault(key, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return bool(ready())
        return bool(ready())


class BenchClose(CloseSimulator):
    """The Close simulator with one more fault switch: a random fraction of slow requests."""

    def __init__(self) -> None:
        super().__init__(api_key=CLOSE_API_KEY)
        self.slow_fraction = 0.0
        self.slow_seconds = 10.0
        self._slow_random = random.Random(7)

    def _latency_for(self, path: str) -> float:
        base = super()._latency_for(path)
        if self.slow_fraction and self._slow_random.random() < self.slow_fraction:
            return max(base, self.slow_seconds)
        return base


def endpoint_of(method: str, path: str) -> str:
    return f"{method} {_ID_SEGMENT.sub('/{id}', path)}"


def search_kind(body: Any) -> str:
    """Which bot feature sent a `/data/search/`: told apart by the `_limit` each one asks for."""
    limit = body.get("_limit") if isinstance(body, dict) else None
    kinds = {20: "preselect", 99: "typeahead", 5: "create"}
    return kinds.get(limit, "other") if isinstance(limit, int) else "other"


class Control:
    """The benchmark's side door into the simulators (not part of either API)."""

    def __init__(self, slack: BenchSlack, close: BenchClose) -> None:
        self.slack = slack
        self.close = close
        self.app = Starlette(
            routes=[
                Route("/command", self.command, methods=["POST"]),
                Route("/opened/{trigger_id}", self.opened, methods=["GET"]),
                Route("/view", self.view, methods=["POST"]),
                Route("/ack/{view_id}", self.ack, methods=["POST"]),
                Route("/reset", self.reset, methods=["POST"]),
                Route("/faults", self.faults, methods=["POST"]),
                Route("/stats", self.stats, methods=["GET"]),
            ]
        )

    async def command(self, request: Request) -> Response:
        """The one-time handles Slack mints for a slash command."""
        body = await request.json()
        user_id, channel_id = body["user_id"], body["channel_id"]
        return JSONResponse(
            {
                "trigger_id": self.slack.issue_trigger(user_id),
                "response_url": self.slack.issue_response_url(channel_id, user_id),
            }
        )

    async def opened(self, request: Request) -> Response:
        """The modal opened with this trigger (waits up to `timeout`), with when it opened."""
        trigger_id = request.path_params["trigger_id"]
        timeout = float(request.query_params.get("timeout", "5"))
        found = await self.slack.wait_key(
            trigger_id, lambda: trigger_id in self.slack.opened, timeout
        )
        if not found:
            return JSONResponse({"error": "not_opened"}, status_code=404)
        view_id, at = self.slack.opened[trigger_id]
        return JSONResponse({"view_id": view_id, "at": at, "view": self._payload(view_id)})

    async def view(self, request: Request) -> Response:
        """The view as a submission would carry it, after the user set `values`.

        With `wait_update`, first waits for the bot's first views.update (the lead it
        preselects), as a person would wait for the form to settle.
        """
        body = await request.json()
        view_id = body["view_id"]
        updated_at = None
        if body.get("wait_update"):
            await self.slack.wait_key(
                view_id,
                lambda: view_id in self.slack.first_update,
                float(body.get("timeout", 10)),
            )
            updated_at = self.slack.first_update.get(view_id)
        for block_id, choice in (body.get("values") or {}).items():
            try:
                element = self.slack.find_element(view_id, block_id)
            except KeyError:
                continue
            state = blockkit.state_for(element, choice)
            self.slack.set_state(view_id, block_id, element["action_id"], state)
        return JSONResponse({"view": self._payload(view_id), "updated_at": updated_at})

    async def ack(self, request: Request) -> Response:
        """What Slack does with the bot's answer to a view submission."""
        raw = await request.body()
        answer = json.loads(raw) if raw.strip() else None
        try:
            self.slack.apply_response_action(request.path_params["view_id"], answer)
        except RejectedAck as error:
            return JSONResponse({"ok": False, "problems": error.problems})
        return JSONResponse({"ok": True})

    async def reset(self, _request: Request) -> Response:
        self.slack.reset_counts()
        self.close.reset_requests()
        return JSONResponse({"ok": True})

    async def faults(self, request: Request) -> Response:
        """Turn on the scale run's faults (after the bot has loaded its catalog)."""
        body = await request.json()
        if body.get("rate_limit_every"):
            self.close.rate_limit_every(int(body["rate_limit_every"]), reset=0.05)
        self.close.slow_fraction = float(body.get("slow_fraction", 0.0))
        self.close.slow_seconds = float(body.get("slow_seconds", 10.0))
        return JSONResponse({"ok": True})

    async def stats(self, _request: Request) -> Response:
        endpoints: Counter[str] = Counter()
        statuses: Counter[str] = Counter()
        searches: Counter[str] = Counter()
        for r in self.close.requests:
            endpoint = endpoint_of(r.method, r.path)
            if endpoint == "GET /opportunity/" and any(k.startswith("date_") for k in r.query):
                # The nudges' and digest's planners list deals by date: not the create path.
                endpoint += " (by date: nudges, digest)"
            endpoints[endpoint] += 1
            statuses[str(r.status)] += 1
            if r.method == "POST" and r.path == "/data/search/":
                searches[search_kind(r.json)] += 1
        seeded = {"Acme Corp", "Globex Corporation", "Initech", "Nakatomi Trading"}
        leads = self.close.org.leads
        return JSONResponse(
            {
                "slack_calls": dict(self.slack.counts),
                "slack_errors": dict(self.slack.errors),
                "close_requests": dict(endpoints),
                "close_statuses": dict(statuses),
                "close_searches": dict(searches),
                "leads_total": len(leads),
                # A lead made again under a name the org already had: preselection gave up.
                "duplicate_seeded_leads": sum(1 for lead in leads[8:] if lead["name"] in seeded),
                # Leads the bench never asked for (its new leads are all named "Bench …").
                "unexpected_new_leads": sorted(
                    {lead["name"] for lead in leads[8:] if not lead["name"].startswith("Bench ")}
                ),
                "opportunities": [
                    {
                        "id": o["id"],
                        "note": o.get("note") or "",
                        "lead_id": o.get("lead_id"),
                        "date_created": o["date_created"],
                    }
                    for o in self.close.opportunities
                ],
            }
        )

    def _payload(self, view_id: str) -> dict[str, Any]:
        view = dict(self.slack.views[view_id])
        view["state"] = {"values": self.slack.state_values(view_id)}
        return view


async def serve(close_latency: float) -> None:
    slack, close = BenchSlack(), BenchClose()
    close.latency = close_latency
    slack_url = await slack.start()
    close_url = await close.start()
    control = Control(slack, close)
    server = await start_server(control.app)
    print(
        json.dumps({"slack_url": slack_url, "close_url": close_url, "control_url": server.url}),
        flush=True,
    )
    # The parent closes our stdin to stop us (uvicorn owns SIGINT/SIGTERM while serving).
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop()
    await close.stop()
    await slack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--close-latency", type=float, default=1.0, help="seconds per Close call")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.close_latency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
