"""The modal's submission: validate (inline errors), store durably, ack, then hand to the worker."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext

from bot.blocks.modal import CALLBACK_ID, POST_IN_BLOCK_ID, ModalForm, ModalMetadata
from bot.blocks.status_views import created_view, creating_view
from bot.close.models import Opportunity
from bot.deals.form import FormValues, read_state, validate
from bot.deals.models import ReplyTarget, Submission, SubmissionState
from bot.deals.prefill import new_lead_option
from bot.listeners.fallback import mark_started
from bot.listeners.modal_flow import SourceMessage, fetch_permalink
from bot.listeners.payload import dict_at, str_at
from bot.services import Services
from bot.slack.after_ack import after_ack
from bot.slack.text import with_permalink

log = logging.getLogger(__name__)

STALE_FORM = "This form is out of date. Close it and run /opportunity again."
# Only when the link fetched after views.open did not make it into the modal.
PERMALINK_AT_SUBMIT_SECONDS = 1.0
# Slack waits 3 s for the ack. Past this much of it, nothing optional is done before the
# insert and the ack (the link to the source message is left out rather than the ack late).
ACK_BUDGET_SECONDS = 2.5


def register(app: AsyncApp, services: Services) -> None:
    @app.view(CALLBACK_ID)
    async def opportunity_submitted(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await submit_opportunity(services, ack, body, context)


async def submit_opportunity(
    services: Services, ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
) -> None:
    """Validate, store and ack within Slack's 3 s; Close is asked afterwards, by the worker."""
    mark_started(context, "opportunity_submitted")
    loop = asyncio.get_running_loop()
    started = loop.time()
    view = dict_at(body, "view")
    user_id = str_at(body, "user", "id")
    metadata = ModalMetadata.decode(view.get("private_metadata"))
    if metadata is None or not user_id:
        await ack(response_action="errors", errors={"lead": STALE_FORM})
        return

    form = read_state(dict_at(view, "state", "values"))
    checked = validate(form, services.catalog, locale=metadata.locale)
    errors = dict(checked.errors)

    owner_id = form.owner or user_id
    # A new email match is stored in the background: the ack waits on no write but the insert.
    mapping = await services.identity.close_user_for(owner_id, remember_later=True)
    if mapping.close_user is None:
        # Says why, how to fix it and who can (bots, guests, deactivated: who to pick instead).
        errors["owner"] = mapping.owner_error(is_self=owner_id == user_id)
    if errors or checked.request is None:
        await ack(response_action="errors", errors=errors)
        return

    submitter = await services.identity.profile(user_id)
    left = ACK_BUDGET_SECONDS - (loop.time() - started)
    permalink = await _permalink(services, metadata, min(left, PERMALINK_AT_SUBMIT_SECONDS))
    request = checked.request.model_copy(
        update={
            "user_id": mapping.close_user.id if mapping.close_user else None,
            "tz_offset_hours": submitter.tz_offset_hours if submitter else None,
            "owner_slack_id": owner_id,
            "note": with_permalink(checked.request.note, permalink),
        }
    )
    # Stored before the ack: from here on, nothing the user submitted can be lost.
    submission, is_new = await services.deals.accept(
        idempotency_key=metadata.key,
        request=request,
        reply_to=_reply_target(metadata, view, user_id),
        slack_user_id=user_id,
        team_id=str_at(body, "team", "id"),
    )
    shown = _shown_after_submit(
        services, submission, is_new=is_new, lead_name=request.lead_name, metadata=metadata
    )
    await ack(response_action="update", view=shown)
    if is_new:
        # After the ack: the worker's views.update ("Created") must come after "Creating…".
        after_ack(services.worker.kick)
    else:
        log.info("Duplicate submission %s ignored (state %s)", submission.id, submission.state)


def rehearse_submission(services: Services, form: ModalForm) -> None:
    """Read back what `form` shows as a submission of it would be read (validated against the
    catalog, the "Creating…" view built), without storing anything: the warm-up's rehearsal of
    the submission's first use. Pure: no Slack, Close or database call."""
    # The typed lead is preselected after the modal opens (a Close search): as if picked new.
    lead = form.lead or new_lead_option("Acme Corp")
    shown = FormValues(
        lead=lead.value,
        lead_label=lead.label,
        value=form.value_text,
        value_period=form.value_period,
        confidence=None if form.confidence is None else str(form.confidence),
        date_won=form.date_won.isoformat() if form.date_won else None,
        status=form.status_id,
        owner=form.owner,
        note=form.note,
    )
    checked = validate(shown, services.catalog, locale=form.metadata.locale)
    lead_name = checked.request.lead_name if checked.request else "Acme Corp"
    creating_view(lead_name, private_metadata=form.metadata.encode())


def _reply_target(metadata: ModalMetadata, view: dict[str, Any], user_id: str) -> ReplyTarget:
    """Where the outcome is told: the modal itself, then the conversation it came from."""
    channel_id = metadata.channel_id
    if metadata.post_in:
        # The picker decides; left empty, the confirmation goes to the user's DM.
        channel_id = _selected_conversation(view)
    return ReplyTarget(
        user_id=user_id,
        channel_id=channel_id,
        thread_ts=metadata.thread_ts,
        response_url=metadata.response_url,
        view_id=str_at(view, "id"),
    )


def _shown_after_submit(
    services: Services,
    submission: Submission,
    *,
    is_new: bool,
    lead_name: str,
    metadata: ModalMetadata,
) -> dict[str, Any]:
    """The modal stays open on "Creating…" until Close answers, so a Close 400 can still be
    shown on its field; if the user closes it, the outcome comes in the thread. A repeat of a
    submission Close already has shows that outcome instead."""
    if not is_new and submission.state == SubmissionState.CREATED and submission.response:
        done = Opportunity.model_validate(submission.response)
        return created_view(done, close_app_url=services.settings.close_app_url, where="")
    return creating_view(lead_name, private_metadata=metadata.encode())


async def _permalink(services: Services, metadata: ModalMetadata, budget: float) -> str | None:
    if metadata.permalink or not (metadata.source_channel and metadata.source_ts):
        return metadata.permalink
    if budget <= 0:
        return None
    source = SourceMessage(channel=metadata.source_channel, ts=metadata.source_ts)
    try:
        return await asyncio.wait_for(fetch_permalink(services, source), budget)
    except TimeoutError:
        return None


def _selected_conversation(view: dict[str, Any]) -> str | None:
    """The "Post confirmation in" picker's choice, whatever its action_id."""
    block = dict_at(view, "state", "values", POST_IN_BLOCK_ID)
    for element in block.values():
        chosen = str_at(element, "selected_conversation")
        if chosen:
            return chosen
    return None
