"""A submission whose ack misses Slack's 3 s: never told it failed, created once, told once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bot.listeners.fallback import NOT_SUPPORTED
from sandbox.stack import Sandbox
from tests.flows import REQUIRED_CUSTOM, open_modal, wait_opportunities, wait_until
from tests.test_durability import all_told

# Longer than Bolt's 3 s wait for an ack, shorter than the late-ack grace after it.
SLOW_SLACK_SECONDS = 3.6


def _said(sb: Sandbox, text: str) -> list[Any]:
    """Every Web API call whose parameters carry `text` (messages, ephemerals, views)."""
    return [c for c in sb.slack.calls() if text in json.dumps(c.params)]


def _opportunity_posts(sb: Sandbox) -> list[Any]:
    return [r for r in sb.close.requests if r.method == "POST" and r.path == "/opportunity/"]


async def test_a_late_ack_is_not_a_failure_and_a_second_create_adds_nothing(
    sandbox: Sandbox,
) -> None:
    sb = sandbox
    view_id = await open_modal(sb, "Acme Corp 12k")
    # Bob owns it: his profile is not cached yet, so the ack waits on a slow users.info.
    sb.driver._apply_values(view_id, {**REQUIRED_CUSTOM, "owner": "U0BOB"})
    # What Slack sends on each press of Create on this modal (it keeps the form after a
    # timeout, whatever the late answer says).
    press = {
        **sb.driver._base("view_submission", "U0ALICE"),
        "trigger_id": sb.slack.issue_trigger("U0ALICE"),
        "view": sb.driver._view_payload(view_id),
        "response_urls": [],
    }

    sb.slack.latency = SLOW_SLACK_SECONDS
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = await sb.driver._interaction(press)
    took = loop.time() - started
    sb.slack.latency = 0.0

    assert took > 3.0, "the slow path was not slow: the test proves nothing"
    assert first.status_code == 200
    assert "older version" not in first.text and "errors" not in first.text, first.text
    [opportunity] = await wait_opportunities(sb, 1, timeout=10)
    assert opportunity["user_id"] == "user_bob"
    # The user is told it is in Close (the summary in the channel), and nothing said it failed.
    await wait_until(lambda: bool(_said(sb, "logged an opportunity")), timeout=10)
    assert not _said(sb, NOT_SUPPORTED[:40])

    # Slack showed a connection error on the form: the user presses Create again.
    second = await sb.driver._interaction(
        {**press, "trigger_id": sb.slack.issue_trigger("U0ALICE")}
    )
    assert second.status_code == 200
    answer = second.json()
    assert answer["response_action"] == "update", answer
    assert "Created the opportunity" in json.dumps(answer["view"])
    # A press is stored before its ack: the store holds the one submission, and once it is
    # told and marked nothing is left to create or say.
    assert len(list(await sb.services.store.recent())) == 1
    await wait_until(lambda: all_told(sb))
    assert len(sb.close.opportunities) == 1
    assert len(_opportunity_posts(sb)) == 1
    assert not _said(sb, NOT_SUPPORTED[:40])


async def test_a_request_no_listener_takes_still_gets_the_older_version_answer(
    sandbox: Sandbox,
) -> None:
    view_id = await open_modal(sandbox, "Acme Corp 12k")
    press = {
        **sandbox.driver._base("view_submission", "U0ALICE"),
        "trigger_id": sandbox.slack.issue_trigger("U0ALICE"),
        "view": {**sandbox.driver._view_payload(view_id), "callback_id": "retired_modal_v0"},
        "response_urls": [],
    }
    response = await sandbox.driver._interaction(press)
    assert response.status_code == 200
    assert "older version" in response.text
