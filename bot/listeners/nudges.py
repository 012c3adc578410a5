"""The nudge DM's taps (Won, Lost, +1 week, Pick a date) and the same on App Home's *This week*,
`/opportunity nudges on|off` and the App Home switch."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, cast

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.blocks.home import HOME_NUDGES_ACTION_ID
from bot.blocks.nudges import (
    DATE_ACTION_ID,
    HOME,
    LOST_ACTION_ID,
    WEEK_ACTION_ID,
    WON_ACTION_ID,
    read_tap_value,
)
from bot.deals.models import ReplyTarget
from bot.listeners.home import publish_home
from bot.listeners.home_week import person_today
from bot.listeners.payload import str_at
from bot.listeners.switches import is_switch_command, switch_value
from bot.nudges.taps import Tap
from bot.services import Services
from bot.tasks import spawn

TAPS: dict[str, Tap] = {
    WON_ACTION_ID: "won",
    LOST_ACTION_ID: "lost",
    WEEK_ACTION_ID: "week",
    DATE_ACTION_ID: "date",
}
_ANY_TAP = re.compile("^(" + "|".join(re.escape(a) for a in TAPS) + ")$")
USAGE = "Usage: `/opportunity nudges off` or `/opportunity nudges on`."


def is_nudges_command(text: str) -> bool:
    return is_switch_command(text, "nudges")


async def handle_command(
    services: Services, text: str, *, user_id: str, respond: AsyncRespond
) -> None:
    """`nudges off|on`: the switch, answered privately; anything else: how to use it."""
    on = switch_value(text)
    if on is None:
        await respond(text=USAGE, response_type="ephemeral")
        return
    await services.people.set_nudges(user_id, on, now=services.clock())
    await respond(text=switched(on, services.settings.nudge_time), response_type="ephemeral")


def switched(on: bool, nudge_time: str) -> str:
    if not nudge_time:
        return "Saved. (Nudges are turned off for the whole workspace right now.)"
    if on:
        return (
            f"Nudges are on: at {nudge_time} your time, a DM lists your deals past their "
            "expected close date."
        )
    return "Nudges are off: no more morning DM about overdue deals. `/opportunity nudges on` brings it back."


def _tapped(body: dict[str, Any]) -> tuple[ReplyTarget, str, str, Tap, date | None] | None:
    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions else {}
    tap = TAPS.get(str(action.get("action_id") or ""))
    ids = read_tap_value(action.get("value")) or read_tap_value(action.get("block_id"))
    if tap is None or ids is None:
        return None
    picked_text = action.get("selected_date")
    try:
        picked = date.fromisoformat(picked_text) if isinstance(picked_text, str) else None
    except ValueError:
        picked = None
    answer = ReplyTarget(
        user_id=str_at(body, "user", "id") or "",
        channel_id=str_at(body, "container", "channel_id") or str_at(body, "channel", "id"),
    )
    return answer, ids[0], ids[1], tap, picked


async def home_tap(
    services: Services,
    team_id: str,
    answer: ReplyTarget,
    opportunity_id: str,
    tap: Tap,
    picked: date | None,
) -> None:
    """A line of App Home's *This week*: the nudge's change as the person, then their Home
    again (the deal gone from it, or at its new date)."""
    today = await person_today(services, answer.user_id)
    await services.nudge_taps.tap_from_home(answer, opportunity_id, tap, picked, today)
    await publish_home(services, answer.user_id, team_id)


def register(app: AsyncApp, services: Services) -> None:
    @app.action(_ANY_TAP)
    async def nudge_tapped(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        tapped = _tapped(body)
        if tapped is None:
            return
        answer, send_id, opportunity_id, tap, picked = tapped
        if send_id == HOME:
            team_id = str_at(body, "team", "id") or ""
            spawn(home_tap(services, team_id, answer, opportunity_id, tap, picked), name="home-tap")
            return
        spawn(
            services.nudge_taps.tap(answer, send_id, opportunity_id, tap, picked), name="nudge-tap"
        )

    @app.action(HOME_NUDGES_ACTION_ID)
    async def home_switch(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        user_id = str_at(body, "user", "id") or ""
        actions = cast(list[dict[str, Any]], body.get("actions") or [{}])
        on = actions[0].get("value") != "off"
        await services.people.set_nudges(user_id, on, now=services.clock())
        await publish_home(services, user_id, str_at(body, "team", "id") or "")
