"""Link previews: `link_shared` answered by chat.unfurl, and the preview's *Log an opportunity*."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltRequest

from bot.blocks.modal import ModalForm
from bot.blocks.previews import PREVIEW_LOG_ACTION_ID, PreviewRef
from bot.close.models import Lead
from bot.deals.prefill import existing_lead_option
from bot.listeners.modal_flow import lead_contacts, open_modal
from bot.listeners.payload import str_at
from bot.listeners.person import tell_cannot_act
from bot.services import Services
from bot.unfurl.event import COMPOSER, LinkShared

log = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    async def tell(shared: LinkShared, refused: Exception) -> None:
        """The sharer cannot act in Close yet (not connected, or a broken connection): the
        *Connect*/*Reconnect Close* prompt, only to them (an ephemeral where they shared the
        link, else by DM)."""
        in_channel = shared.conversation()
        await tell_cannot_act(
            services,
            shared.team_id,
            shared.user or "",
            channel=in_channel,
            thread_ts=shared.thread_ts if in_channel else None,
        )

    unfurler = services.unfurler

    @app.event("link_shared")
    async def link_shared(
        body: dict[str, Any], event: dict[str, Any], request: AsyncBoltRequest
    ) -> None:
        # Bolt acked before this runs (events are acknowledged first), so Close's time is ours.
        # Slack's retry of an event one process took is previewed by none (whichever it hits).
        if not await unfurler.first_delivery(str_at(body, "event_id")):
            retry = request.headers.get("x-slack-retry-num") or ["?"]
            log.info(
                "link_shared %s redelivered (retry %s): previewed once", body["event_id"], retry[0]
            )
            return
        await unfurler.unfurl(LinkShared.from_event(event, str_at(body, "team_id")), tell=tell)

    @app.action(PREVIEW_LOG_ACTION_ID)
    async def log_from_preview(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await open_for_preview(services, body)


async def open_for_preview(services: Services, body: dict[str, Any]) -> None:
    """The modal with the preview's lead chosen; the confirmation goes in the thread of the
    message that shared the link (as from a message shortcut)."""
    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions else {}
    ref = PreviewRef.decode(str_at(action, "value"))
    if ref is None:
        return
    channel_id = str_at(body, "container", "channel_id") or str_at(body, "channel", "id")
    if channel_id == COMPOSER:
        channel_id = None  # the confirmation then comes by DM
    message_ts = str_at(body, "container", "message_ts")
    lead = existing_lead_option(Lead(id=ref.lead_id, display_name=ref.lead_name))
    user_id = str_at(body, "user", "id") or ""
    team_id = str_at(body, "team", "id")

    async def with_lead(shown: ModalForm) -> ModalForm:
        # After views.open (never before: the trigger_id lives 3 s), with the lead's contacts.
        contacts = await lead_contacts(services, ref.lead_id, user_id=user_id, team_id=team_id)
        return shown.model_copy(update={"lead": lead, "lead_hint": None, "contacts": contacts})

    await open_modal(
        services,
        trigger_id=str_at(body, "trigger_id") or "",
        user_id=user_id,
        team_id=team_id,
        channel_id=channel_id,
        thread_ts=(ref.thread_ts or message_ts) if channel_id else None,
        response_url=str_at(body, "response_url"),
        refresh=with_lead,
    )
