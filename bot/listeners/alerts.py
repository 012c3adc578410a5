"""`/opportunity alerts on|off` and the App Home switch: person_settings.alerts (default on)."""

from __future__ import annotations

from typing import Any, cast

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.blocks.home import HOME_ALERTS_ACTION_ID
from bot.listeners.home import publish_home
from bot.listeners.payload import str_at
from bot.listeners.switches import is_switch_command, switch_value
from bot.services import Services

USAGE = "Usage: `/opportunity alerts off` or `/opportunity alerts on`."


def is_alerts_command(text: str) -> bool:
    return is_switch_command(text, "alerts")


async def handle_command(
    services: Services, text: str, *, user_id: str, respond: AsyncRespond
) -> None:
    """`alerts off|on`: the switch, answered privately; anything else: how to use it."""
    on = switch_value(text)
    if on is None:
        await respond(text=USAGE, response_type="ephemeral")
        return
    await services.people.set_alerts(user_id, on, now=services.clock())
    await respond(text=switched(on), response_type="ephemeral")


def switched(on: bool) -> str:
    if on:
        return "Owner alerts are on: a DM when someone else changes one of your deals in Close."
    return (
        "Owner alerts are off: no DM when someone else changes your deals in Close. "
        "`/opportunity alerts on` brings them back."
    )


def register(app: AsyncApp, services: Services) -> None:
    @app.action(HOME_ALERTS_ACTION_ID)
    async def home_switch(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        user_id = str_at(body, "user", "id") or ""
        actions = cast(list[dict[str, Any]], body.get("actions") or [{}])
        on = actions[0].get("value") != "off"
        await services.people.set_alerts(user_id, on, now=services.clock())
        await publish_home(services, user_id, str_at(body, "team", "id") or "")
