"""Shortcuts: "Create opportunity" on a message, and "Log opportunity" from the lightning menu."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.listeners.modal_flow import SourceMessage, open_modal
from bot.listeners.payload import dict_at, str_at
from bot.services import Services
from bot.slack.text import clean_message_text

MESSAGE_SHORTCUT = "create_opportunity_from_message"
GLOBAL_SHORTCUT = "log_opportunity"


def register(app: AsyncApp, services: Services) -> None:
    @app.shortcut(MESSAGE_SHORTCUT)
    async def create_from_message(ack: AsyncAck, body: dict[str, Any]) -> None:
        """The modal prefilled from the message; the confirmation goes in the message's thread."""
        await ack()
        message = dict_at(body, "message")
        channel_id = str_at(body, "channel", "id")
        message_ts = str_at(message, "ts") or str_at(body, "message_ts")
        await open_modal(
            services,
            trigger_id=str_at(body, "trigger_id") or "",
            user_id=str_at(body, "user", "id") or "",
            team_id=str_at(body, "team", "id"),
            text=clean_message_text(str_at(message, "text") or ""),
            channel_id=channel_id,
            # A reply's thread is its parent's; a top-level message starts its own.
            thread_ts=str_at(message, "thread_ts") or message_ts,
            response_url=str_at(body, "response_url"),
            source=SourceMessage(channel=channel_id, ts=message_ts)
            if channel_id and message_ts
            else None,
        )

    @app.shortcut(GLOBAL_SHORTCUT)
    async def log_opportunity(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await open_with_picker(services, body)


async def open_with_picker(services: Services, body: dict[str, Any]) -> None:
    """The empty modal, with a picker for where the confirmation goes (else the user's DM):
    the global shortcut and App Home's button."""
    await open_modal(
        services,
        trigger_id=str_at(body, "trigger_id") or "",
        user_id=str_at(body, "user", "id") or "",
        team_id=str_at(body, "team", "id"),
        post_in=True,
    )
