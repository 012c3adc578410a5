"""Slack Connect: `channel_shared` / `channel_unshared` keep what the bot knows of a channel's
readers current (bot.slack.audience), for every process."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.listeners.payload import str_at
from bot.services import Services
from bot.slack.audience import Audience

log = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    audiences = services.slack_gateway.audiences

    @app.event("channel_shared")
    async def channel_shared(event: dict[str, Any]) -> None:
        channel_id = str_at(event, "channel")
        if channel_id is None:
            return
        log.info("Channel %s shared with %s", channel_id, str_at(event, "connected_team_id"))
        await audiences.learn(channel_id, Audience.EXTERNAL, source="channel_shared")

    @app.event("channel_unshared")
    async def channel_unshared(event: dict[str, Any]) -> None:
        channel_id = str_at(event, "channel")
        if channel_id is None:
            return
        # Still shared with yet another organization: still external.
        still = event.get("is_ext_shared") is True
        audience = Audience.EXTERNAL if still else Audience.INTERNAL
        log.info(
            "Channel %s no longer shared with %s",
            channel_id,
            str_at(event, "previously_connected_team_id"),
        )
        await audiences.learn(channel_id, audience, source="channel_unshared")
