"""Overdue nudges, measured: build and send them for many owners against the simulators.

    python -m bench.nudges                    # 2,000 owners x 10 overdue deals
    python -m bench.nudges --owners 200 --deals 12

Everything runs in this process, the bot under uvicorn over real HTTP against the Slack and
Close simulators (sandbox/): the workspace gets `--owners` people, each matching a Close user
by email and owning `--deals` overdue opportunities; the app's clock is put at their NUDGE_TIME,
and the planner and the job runner do the rest. Reported: wall time from the first look to the
last DM, Close requests and Slack calls per owner (what the bot asked, counted by the
simulators), and the process's memory (peak RSS, simulators included; the simulators' data and
request logs are counted in it, so it is an upper bound of the bot's own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.tables import ScheduledSendRow
from sandbox.close_sim import CloseSimulator
from sandbox.slack_sim import SlackProfile, SlackSimulator, SlackUser
from sandbox.stack import BOT_TOKEN, CLOSE_API_KEY, running_sandbox

# 09:00 UTC: every bench owner is in UTC, so every nudge falls due at the first look.
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
LEADS = 50


def _rss_mb() -> float:
    """This process's resident set size now, in MB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def seed(close: CloseSimulator, slack: SlackSimulator, owners: int, deals: int) -> None:
    """`owners` people in Slack and Close (matched by email), each with `deals` overdue deals."""
    for n in range(LEADS):
        close.org.add_lead(f"Bench Lead {n:03d}", lead_id=f"lead_bench{n:03d}")
    for n in range(owners):
        email = f"owner{n:05d}@example.com"
        close.org.users.append(
            {"id": f"user_bench{n:05d}", "email": email, "first_name": "Owner", "last_name": str(n)}
        )
        slack.workspace.users.append(
            SlackUser(
                id=f"U1B{n:05d}",
                name=f"owner{n}",
                real_name=f"Owner {n}",
                tz="UTC",
                profile=SlackProfile(real_name=f"Owner {n}", display_name=f"owner{n}", email=email),
            )
        )
        for d in range(deals):
            close.seed_opportunity(
                f"lead_bench{(n + d) % LEADS:03d}",
                {
                    "status_id": "stat_proposal",
                    "date_won": f"2026-11-{d % 28 + 1:02d}",
                    "value": 100_000 * (d + 1),
                    "value_period": "annual",
                },
                user_id=f"user_bench{n:05d}",
            )


async def run(owners: int, deals: int) -> dict[str, Any]:
    close, slack = CloseSimulator(api_key=CLOSE_API_KEY), SlackSimulator(bot_token=BOT_TOKEN)
    started = time.perf_counter()
    seed(close, slack, owners, deals)
    seeded = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="bench-nudges-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bot.sqlite3'}"
        async with running_sandbox(
            database_url=url,
            clock=lambda: NOW,
            close=close,
            slack=slack,
            nudge_time="09:00",
            schedule_plan_seconds=3600,  # one look, timed here
            worker_poll_seconds=0.2,
        ) as sb:
            await sb.services.catalog.wait_loaded(30.0)
            close_mark, slack_mark = len(close.requests), slack.mark()
            rss_before = _rss_mb()
            began, cpu = time.perf_counter(), time.process_time()
            planned = await sb.services.planner.tick()
            planned_in = time.perf_counter() - began
            sent = await _until_all_sent(sb.services.engine, owners)
            wall = time.perf_counter() - began
            cpu = time.process_time() - cpu
            close_calls = Counter(f"{r.method} {r.path}" for r in close.requests[close_mark:])
            slack_calls = Counter(c.method for c in slack.calls()[slack_mark:])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "owners": owners,
        "deals_per_owner": deals,
        "seed_seconds": round(seeded, 1),
        "planned": planned,
        "plan_seconds": round(planned_in, 2),
        "sent": sent,
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),  # this process: the bot and both simulators
        "close_requests_per_owner": round(sum(close_calls.values()) / owners, 3),
        "close_requests": dict(close_calls),
        "slack_calls_per_owner": round(sum(slack_calls.values()) / owners, 3),
        "slack_calls": dict(slack_calls),
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_mb": round(peak, 1),
    }


async def _until_all_sent(engine: AsyncEngine, owners: int) -> int:
    """Waits until every bench owner's nudge is sent; returns how many were."""
    query = select(func.count()).where(
        ScheduledSendRow.recipient.like("U1B%"), ScheduledSendRow.state == "sent"
    )
    while True:
        async with engine.connect() as connection:
            count = int(await connection.scalar(query) or 0)
        if count >= owners:
            return count
        await asyncio.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.nudges", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--owners", type=int, default=2000)
    parser.add_argument("--deals", type=int, default=10)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.owners, args.deals))
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
