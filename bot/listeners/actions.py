"""Buttons and selects: the lead picked in the modal, links, and "Try again" on a failed deal."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.blocks.messages import OPEN_IN_CLOSE_ACTION_ID, RETRY_ACTION_ID
from bot.blocks.modal import ModalForm, ModalMetadata
from bot.deals.form import modal_form_from_values, read_state
from bot.deals.models import LeadChoice
from bot.deals.prefill import form_from_request
from bot.listeners.modal_flow import lead_contacts, open_modal, update_modal
from bot.listeners.payload import dict_at, str_at
from bot.services import Services

log = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    @app.action("lead")
    async def lead_picked(ack: AsyncAck, body: dict[str, Any]) -> None:
        """Offer the chosen lead's contacts, keeping everything already typed."""
        await ack()
        view = dict_at(body, "view")
        metadata = ModalMetadata.decode(view.get("private_metadata"))
        view_id = str_at(view, "id")
        if metadata is None or view_id is None:
            return
        values = read_state(dict_at(view, "state", "values"))
        form = modal_form_from_values(values, metadata, services.catalog)
        lead = LeadChoice.from_option_value(values.lead) if values.lead else None
        contacts = (
            await lead_contacts(
                services,
                lead.id,
                user_id=str_at(body, "user", "id") or "",
                team_id=str_at(body, "team", "id"),
            )
            if lead and lead.id
            else []
        )
        form = form.model_copy(update={"contacts": contacts, "contact_id": None})
        await update_modal(services, view_id, form, str_at(view, "hash"))

    @app.action(OPEN_IN_CLOSE_ACTION_ID)
    async def open_in_close(ack: AsyncAck) -> None:
        await ack()  # a link button: Slack opens the URL, we only acknowledge

    @app.action(RETRY_ACTION_ID)
    async def retry_submission(ack: AsyncAck, body: dict[str, Any]) -> None:
        """Reopen the form with what was submitted, so nothing has to be typed again."""
        await ack()
        actions = body.get("actions")
        action = actions[0] if isinstance(actions, list) and actions else {}
        submission_id = str_at(action, "value")
        submission = await services.store.get(submission_id) if submission_id else None
        user_id = str_at(body, "user", "id")
        team_id = str_at(body, "team", "id")
        trigger_id = str_at(body, "trigger_id")
        if submission is None or user_id is None or trigger_id is None:
            return
        metadata = ModalMetadata(
            key=uuid.uuid4().hex,
            channel_id=submission.reply_to.channel_id,
            thread_ts=submission.reply_to.thread_ts,
            response_url=str_at(body, "response_url"),
        )
        request = submission.request
        if submission.lead_id and request.lead.id is None:
            # An earlier attempt created the new lead: trying again must not create another.
            request = request.model_copy(update={"lead": LeadChoice(id=submission.lead_id)})
        owner = request.owner_slack_id or user_id
        form = form_from_request(request, owner=owner, metadata=metadata)
        lead_id = request.lead.id

        async def with_contacts(shown: ModalForm) -> ModalForm | None:
            # The lead's contacts (never before views.open), so the chosen contact is kept.
            contacts = (
                await lead_contacts(services, lead_id, user_id=user_id, team_id=team_id)
                if lead_id
                else []
            )
            return shown.model_copy(update={"contacts": contacts}) if contacts else None

        await open_modal(
            services,
            trigger_id=trigger_id,
            user_id=user_id,
            team_id=team_id,
            response_url=metadata.response_url,
            prefill=form,
            refresh=with_contacts,
        )
