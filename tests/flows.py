"""Steps of a user's flow through the sandbox, shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
from typing import Any

from sandbox.slack_sim import Call
from sandbox.stack import Sandbox

# The seeded Close org requires the "Source" custom field: every complete submission sets it.
REQUIRED_CUSTOM = {"custom.cf_source": "Inbound"}


async def open_modal(
    sb: Sandbox,
    text: str = "",
    *,
    user_id: str = "U0ALICE",
    channel_id: str = "C0SALES",
    wait_for_lead: bool | None = None,
) -> str:
    """Run `/opportunity text`; returns the modal's view id once the lead preselection is in."""
    mark = sb.slack.mark()
    result = await sb.driver.slash_command(text, user_id=user_id, channel_id=channel_id)
    assert result.response.status_code == 200, result.response.text
    view = await sb.driver.wait_for_view(result.trigger_id)
    view_id: str = view["id"]
    if wait_for_lead if wait_for_lead is not None else bool(text):
        await sb.slack.wait_for(
            "views.update", lambda c: c.params.get("view_id") == view_id, since=mark
        )
    return view_id


async def submit(
    sb: Sandbox, view_id: str, values: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Press Create; returns the bot's ack body ({} for a bare ack)."""
    response = await sb.driver.submit_view(
        view_id, values={**REQUIRED_CUSTOM, **(values or {})}, **kwargs
    )
    assert response.status_code == 200, response.text
    return response.json() if response.content else {}


async def wait_until(predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> Any:  # noqa: ASYNC109
    """Poll `predicate` (a plain or an async callable) until it is truthy, and return its value;
    AssertionError once `timeout` seconds have passed without."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def wait_opportunities(sb: Sandbox, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:  # noqa: ASYNC109
    await wait_until(lambda: len(sb.close.opportunities) >= count, timeout)
    return sb.close.opportunities


async def thread_reply(sb: Sandbox, since: int = 0, timeout: float = 5.0) -> Call:  # noqa: ASYNC109
    """The details message the bot posts in the confirmation's thread."""
    return await sb.slack.wait_for(
        "chat.postMessage",
        lambda c: c.ok and bool(c.params.get("thread_ts")),
        timeout,
        since=since,
    )
