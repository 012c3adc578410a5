"""Close -> Slack, measured: time from a change in Close to its thread reply (webhook and event
log), Close requests the event log costs when nothing changes, and replies told twice.

    python -m bench.sync_bench                 # 20 changes each way, poll every 2 s, 20 s idle
    python -m bench.sync_bench --changes 50 --poll 5 --idle 60

Everything runs in this process against the local simulators (sandbox/): the bot under
uvicorn over real HTTP, Close delivering signed webhooks to it, or the bot reading Close's event
log. The idle cost is counted, then scaled to the default CLOSE_EVENTS_POLL_SECONDS (30 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bot.settings import Settings
from bot.sync.webhook import STATE_KEY
from sandbox.stack import Sandbox, running_sandbox

DEFAULT_POLL = Settings.model_fields["close_events_poll_seconds"].default


async def _log_deal(sb: Sandbox, index: int) -> tuple[str, str]:
    """One opportunity logged through the modal; returns (its id, its thread's root ts)."""
    result = await sb.driver.slash_command(f"Acme Corp {10 + index}k annual", channel_id="C0SALES")
    view = await sb.driver.wait_for_view(result.trigger_id)
    await sb.slack.wait_for("views.update", lambda c: c.params.get("view_id") == view["id"])
    mark = sb.slack.mark()
    await sb.driver.submit_view(view["id"], values={"custom.cf_source": "Inbound"})
    details = await sb.slack.wait_for(
        "chat.postMessage", lambda c: c.ok and bool(c.params.get("thread_ts")), since=mark
    )
    await asyncio.sleep(0.3)  # the confirmation is recorded as told
    return sb.close.opportunities[-1]["id"], str(details.params["thread_ts"])


def _told(sb: Sandbox, root: str) -> int:
    return sum(
        1
        for m in sb.slack.thread("C0SALES", root)
        if str(m.get("text", "")).endswith("changed it in Close")
    )


async def _latencies(sb: Sandbox, changes: int, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
    opportunity_id, root = await _log_deal(sb, 0)
    seconds: list[float] = []
    for step in range(changes):
        before = _told(sb, root)
        started = time.monotonic()
        sb.close.change_opportunity(opportunity_id, {"value": 1_300_000 + step * 10_000})
        while _told(sb, root) == before:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"change {step} was not told within {timeout} s")
            await asyncio.sleep(0.005)
        seconds.append(time.monotonic() - started)
        await asyncio.sleep(0.3)  # people do not edit one deal several times a second
    await asyncio.sleep(1.0)  # anything told twice would show by now
    return {
        "changes": changes,
        "replies": _told(sb, root),
        "p50_s": round(statistics.median(seconds), 3),
        "p95_s": round(sorted(seconds)[max(0, int(len(seconds) * 0.95) - 1)], 3),
        "max_s": round(max(seconds), 3),
    }


async def measure(changes: int, poll: float, idle: float) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'webhook.sqlite3'}"
        async with running_sandbox(database_url=url, webhook=True) as sb:
            for _ in range(500):  # the subscription is set up in the background at start
                if await sb.services.changes.get_state(STATE_KEY):
                    break
                await asyncio.sleep(0.02)
            report["webhook"] = await _latencies(sb, changes, timeout=10)
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'poll.sqlite3'}"
        async with running_sandbox(database_url=url, close_events_poll_seconds=poll) as sb:
            report["poll"] = {"every_s": poll, **await _latencies(sb, changes, timeout=poll * 3)}
            await asyncio.sleep(poll)
            sb.close.reset_requests()
            await asyncio.sleep(idle)
            reads = sb.close.count("GET", "/event/")
            per_poll = reads / max(1, round(idle / poll))
            report["idle"] = {
                "seconds": idle,
                "event_log_requests": reads,
                "other_requests": len(sb.close.requests) - reads,
                "requests_per_poll": round(per_poll, 2),
                f"requests_per_minute_at_{DEFAULT_POLL:g}_s": round(
                    per_poll * 60 / DEFAULT_POLL, 2
                ),
            }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sync_bench", description=__doc__)
    parser.add_argument("--changes", type=int, default=20, help="changes timed each way (20)")
    parser.add_argument("--poll", type=float, default=2.0, help="event-log period in s (2)")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds counted idle (20)")
    args = parser.parse_args(argv)
    report = asyncio.run(measure(args.changes, args.poll, args.idle))
    print(json.dumps(report, indent=2))
    doubled = any(r["replies"] != r["changes"] for r in (report["webhook"], report["poll"]))
    return 1 if doubled else 0


if __name__ == "__main__":
    sys.exit(main())
