"""Whose Close a listener acts with (`CloseClients.for_person`), and the private *Connect Close*
answer for someone who cannot act yet: not connected under CLOSE_ACCESS=personal, or a
connection Close no longer takes."""

from __future__ import annotations

import asyncio
import logging

from bot.blocks.messages import Message
from bot.close.client import CloseClient
from bot.close.errors import CloseAccessBroken, CloseNotConnected
from bot.deals.models import ReplyTarget
from bot.listeners.connect import connect_prompt
from bot.services import Services
from bot.slack.errors import SlackError
from bot.unfurl.cache import SeenRecently

log = logging.getLogger(__name__)

# Reading whether someone is connected (the database, usually remembered): past this, the
# listener gives up rather than act with anyone else's access.
STANDING_BUDGET_SECONDS = 1.0
# The typeahead's share of its 1.5 s for that read (usually remembered: no read at all).
TYPEAHEAD_STANDING_SECONDS = 0.5
# Someone typing in a lead field without a connection is told once in this long (by DM).
TOLD_SECONDS = 600.0

CannotAct = (CloseNotConnected, CloseAccessBroken)


async def close_for(
    services: Services,
    user_id: str,
    team_id: str | None = None,
    *,
    budget: float = STANDING_BUDGET_SECONDS,
) -> CloseClient:
    """The Close client acting for `user_id`. Under CLOSE_ACCESS=key: the key's, at once.
    Raises CloseNotConnected / CloseAccessBroken (answer with `tell_cannot_act`), or
    TimeoutError when their connection could not be read within `budget` seconds."""
    clients = services.close_clients
    if not clients.per_person:
        return clients.key
    return await asyncio.wait_for(clients.for_person(team_id, user_id), timeout=budget)


async def cannot_act_message(services: Services, team_id: str | None, user_id: str) -> Message:
    """The *Connect Close* (or *Reconnect Close*) prompt, for this person only."""
    text, blocks = await connect_prompt(services, team_id or "", user_id, first=True)
    return Message(text=text, blocks=blocks)


async def tell_cannot_act(
    services: Services,
    team_id: str | None,
    user_id: str,
    *,
    response_url: str | None = None,
    channel: str | None = None,
    thread_ts: str | None = None,
) -> None:
    """Answer privately with the prompt: an ephemeral in `channel` (or its thread), else by the
    command's `response_url`, else a DM. Never raises."""
    try:
        message = await cannot_act_message(services, team_id, user_id)
        if channel is not None:
            try:
                await services.slack_gateway.post_ephemeral(
                    channel, user_id, message.text, thread_ts=thread_ts, blocks=message.blocks
                )
                return
            except SlackError as error:
                log.info("chat.postEphemeral of the connect prompt failed: %s", error.code)
        # No channel: only the person's own ways (response_url, DM), never a channel.
        await services.notifier.post(
            ReplyTarget(user_id=user_id, response_url=response_url), message
        )
    except Exception:
        log.warning("Could not tell %s to connect Close", user_id, exc_info=True)


class TypingNudges:
    """Someone with no usable connection typing in a lead field is told once per TOLD_SECONDS."""

    def __init__(self) -> None:
        self._told: SeenRecently[str] = SeenRecently(TOLD_SECONDS)

    async def tell(
        self, services: Services, team_id: str | None, user_id: str, error: Exception
    ) -> None:
        if isinstance(error, CloseAccessBroken):
            await services.close_clients.tell_broken(team_id, user_id)  # once per breakage
        elif self._told.first(user_id):
            await tell_cannot_act(services, team_id, user_id)
