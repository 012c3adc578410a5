"""The confirmation's buttons (Edit, Won, Lost) and the edit modal's submission."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, NamedTuple

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.blocks.changes import saved_view, saving_view
from bot.blocks.messages import (
    EDIT_ACTION_ID,
    LOST_ACTION_ID,
    WON_ACTION_ID,
    ConfirmationRef,
)
from bot.blocks.modal import EDIT_CALLBACK_ID, ModalForm, ModalMetadata, build_opportunity_modal
from bot.close.errors import CloseError, CloseValidationError
from bot.deals.changes import (
    Changes,
    Outcome,
    changed_fields,
    fingerprinted,
    form_from_opportunity,
    put_body,
    request_fields,
)
from bot.deals.confirmation import Confirmation
from bot.deals.form import FormValues, modal_form_from_values, read_state, validate
from bot.deals.models import DealRequest, ReplyTarget, Submission
from bot.deals.refusals import block_for_field, describe_close_error
from bot.listeners.modal_flow import open_modal
from bot.listeners.payload import dict_at, str_at
from bot.logs import redact
from bot.services import Services
from bot.slack.after_ack import ack_settled, after_ack
from bot.tasks import spawn

log = logging.getLogger(__name__)

STALE_EDIT = "This form is out of date. Close it and press Edit again."
# Kept in metadata.loaded next to the fingerprints (ModalMetadata has no field of its own).
CREATED_LEAD_ID = "new_lead_id"
CREATED_LEAD_NAME = "new_lead_name"


def _action_value(body: dict[str, Any]) -> str | None:
    actions = body.get("actions")
    return str_at(actions[0], "value") if isinstance(actions, list) and actions else None


def _details_ts(body: dict[str, Any]) -> str | None:
    """The clicked message: the confirmation's details."""
    return str_at(body, "container", "message_ts") or str_at(body, "message", "ts")


def _answer(body: dict[str, Any]) -> ReplyTarget:
    """Whoever clicked, answered where they clicked: that channel, its thread, the response_url."""
    return ReplyTarget(
        user_id=str_at(body, "user", "id") or "",
        channel_id=str_at(body, "container", "channel_id") or str_at(body, "channel", "id"),
        thread_ts=str_at(body, "message", "thread_ts") or _details_ts(body),
        response_url=str_at(body, "response_url"),
    )


def _clicked(body: dict[str, Any], answer: ReplyTarget) -> Confirmation | None:
    """The confirmation clicked on: its submission and announcement from the button's value,
    its thread and details from where it was clicked."""
    ref = ConfirmationRef.decode(_action_value(body))
    if ref is None:
        return None
    return Confirmation.clicked(
        ref, channel=answer.channel_id, thread_ts=answer.thread_ts, details_ts=_details_ts(body)
    )


def register(app: AsyncApp, services: Services) -> None:
    changes = services.confirmation_actions

    @app.action(EDIT_ACTION_ID)
    async def edit_pressed(ack: AsyncAck, body: dict[str, Any]) -> None:
        await open_edit_modal(services, changes, ack, body)

    @app.action(WON_ACTION_ID)
    async def won_pressed(ack: AsyncAck, body: dict[str, Any]) -> None:
        await mark_outcome(changes, ack, body, "won")

    @app.action(LOST_ACTION_ID)
    async def lost_pressed(ack: AsyncAck, body: dict[str, Any]) -> None:
        await mark_outcome(changes, ack, body, "lost")

    @app.view(EDIT_CALLBACK_ID)
    async def edit_submitted(ack: AsyncAck, body: dict[str, Any]) -> None:
        await submit_edit(services, changes, ack, body)


async def open_edit_modal(
    services: Services, changes: Changes, ack: AsyncAck, body: dict[str, Any]
) -> None:
    """Open THE modal on the opportunity (stored values at once, Close's current right after)."""
    await ack()
    answer = _answer(body)
    actor = answer.user_id
    confirmation = _clicked(body, answer)
    submission = await changes.submission(confirmation)
    if confirmation is None or submission is None:
        await changes.tell(answer, "I cannot find this opportunity any more.")
        return
    if not await changes.allowed(actor, submission):
        await changes.refuse(answer, submission)
        return
    metadata = _edit_metadata(confirmation, answer, submission)
    form = _stored_form(services, changes, submission, metadata)

    async def refresh(shown: ModalForm) -> ModalForm:
        return await changes.fresh_form(shown, actor, submission)

    await open_modal(
        services,
        trigger_id=str_at(body, "trigger_id") or "",
        user_id=actor,
        team_id=str_at(body, "team", "id"),
        response_url=answer.response_url,
        prefill=form,
        refresh=refresh,
    )


def _edit_metadata(
    confirmation: Confirmation, answer: ReplyTarget, submission: Submission
) -> ModalMetadata:
    """What the edit modal carries: the confirmation it was opened from, so the saved change
    is told in its thread and on its announcement (read back by `_edited`)."""
    ref = confirmation.ref
    return ModalMetadata(
        key=uuid.uuid4().hex,
        mode="edit",
        channel_id=answer.channel_id,
        thread_ts=answer.thread_ts,
        details_ts=confirmation.details_ts,
        response_url=answer.response_url,
        submission_id=submission.id,
        opportunity_id=submission.opportunity_id,
        announce_channel=ref.announce_channel,
        announce_ts=ref.announce_ts,
    )


def _edited(
    metadata: ModalMetadata, actor: str, submission: Submission
) -> tuple[Confirmation, ReplyTarget]:
    """The confirmation the edit modal was opened from, and its author answered there."""
    answer = ReplyTarget(
        user_id=actor,
        channel_id=metadata.channel_id,
        thread_ts=metadata.thread_ts,
        response_url=metadata.response_url,
    )
    ref = ConfirmationRef(
        submission_id=submission.id,
        announce_channel=metadata.announce_channel,
        announce_ts=metadata.announce_ts,
    )
    confirmation = Confirmation.clicked(
        ref,
        channel=metadata.channel_id,
        thread_ts=metadata.thread_ts,
        details_ts=metadata.details_ts,
    )
    return confirmation, answer


def _stored_form(
    services: Services, changes: Changes, submission: Submission, metadata: ModalMetadata
) -> ModalForm:
    """The form at once from what we stored, while Close's current values are fetched."""
    stored = changes.stored_opportunity(submission)
    if stored is None:
        return ModalForm(metadata=metadata, summary="Loading the opportunity from Close…")
    return form_from_opportunity(
        stored,
        metadata=metadata,
        owner=submission.request.owner_slack_id,
        catalog=services.catalog,
        summary="Loading the latest values from Close…",
    )


async def mark_outcome(
    changes: Changes, ack: AsyncAck, body: dict[str, Any], kind: Outcome
) -> None:
    """Won or Lost: acked at once, the change made in Close and told in the background."""
    await ack()
    answer = _answer(body)
    confirmation = _clicked(body, answer)
    if confirmation is None:
        return
    spawn(changes.set_outcome(answer, confirmation, kind), name=f"mark-{kind}")


class CheckedEdit(NamedTuple):
    """An edit as validated: what to PUT (request, changed, the owner's Close user) or errors."""

    request: DealRequest | None
    errors: dict[str, str]
    changed: list[str]
    owner_close_id: str | None


async def submit_edit(
    services: Services, changes: Changes, ack: AsyncAck, body: dict[str, Any]
) -> None:
    """Validate like a new one, then PUT only what the user changed (after the ack)."""
    view = dict_at(body, "view")
    actor = str_at(body, "user", "id") or ""
    metadata = ModalMetadata.decode(view.get("private_metadata"))
    submission = (
        await services.store.get(metadata.submission_id)
        if metadata and metadata.submission_id
        else None
    )
    if (
        metadata is None
        or metadata.loaded is None
        or not fingerprinted(metadata.loaded)
        or submission is None
        or submission.opportunity_id is None
    ):
        await ack(response_action="errors", errors={"lead": STALE_EDIT})
        return
    state = dict_at(view, "state", "values")
    values = read_state(state)
    checked = await check_edit(services, values, metadata.loaded, set(state), actor=actor)
    if checked.errors or checked.request is None:
        await ack(response_action="errors", errors=checked.errors)
        return
    if not checked.changed:
        await ack()  # nothing to save: the modal just closes
        return
    await ack(
        response_action="update",
        view=saving_view(checked.request.lead_name, private_metadata=metadata.encode()),
    )
    save = save_edit(
        services,
        changes,
        actor=actor,
        submission=submission,
        metadata=metadata,
        values=values,
        request=checked.request,
        changed=checked.changed,
        owner_close_id=checked.owner_close_id,
        view_id=str_at(view, "id"),
    )
    # Once Slack shows "Saving…": its views.update must not come before the ack's update.
    after_ack(lambda: spawn(save, name="save-edit"))


async def check_edit(
    services: Services,
    values: FormValues,
    loaded: dict[str, str],
    blocks: set[str],
    *,
    actor: str,
) -> CheckedEdit:
    """The form's checks, then what changed since it was `loaded`. Only a changed owner is
    sent to Close, as their Close user: so only then is the owner mapped (and may fail)."""
    checked = validate(values, services.catalog)
    errors = dict(checked.errors)
    request = checked.request
    changed: list[str] = []
    owner_close_id: str | None = None
    if request is not None:
        submitted = request_fields(request, values.owner, services.catalog)
        changed = changed_fields(loaded, submitted, blocks)
        if "owner" in changed and values.owner:
            mapping = await services.identity.close_user_for(values.owner)
            if mapping.close_user is None:
                errors["owner"] = mapping.owner_error(is_self=values.owner == actor)
            else:
                owner_close_id = mapping.close_user.id
    return CheckedEdit(
        request=request, errors=errors, changed=changed, owner_close_id=owner_close_id
    )


def created_lead(metadata: ModalMetadata, name: str) -> str | None:
    """The lead an earlier Save of this form created for `name` (its PUT then failed)."""
    loaded = metadata.loaded or {}
    return loaded.get(CREATED_LEAD_ID) if loaded.get(CREATED_LEAD_NAME) == name else None


def with_created_lead(metadata: ModalMetadata, lead_id: str, name: str) -> ModalMetadata:
    """Remember a lead this form created: Slack keeps "Create new lead" selected in the form
    put back after a failed PUT, and Save again must not create it twice."""
    loaded = {**(metadata.loaded or {}), CREATED_LEAD_ID: lead_id, CREATED_LEAD_NAME: name}
    return metadata.model_copy(update={"loaded": loaded})


async def save_edit(
    services: Services,
    changes: Changes,
    *,
    actor: str,
    submission: Submission,
    metadata: ModalMetadata,
    values: FormValues,
    request: DealRequest,
    changed: list[str],
    owner_close_id: str | None,
    view_id: str | None,
) -> None:
    """PUT, then the modal says saved and the thread says what changed; a Close error puts the
    form back with it under its field, nothing retyped."""
    acked = time.monotonic()  # this runs once the ack ("Saving…") has been sent

    async def show(view_id: str, view: dict[str, Any]) -> None:
        await ack_settled(time.monotonic() - acked)
        await services.notifier.update_view(view_id, view)

    try:
        lead_id = request.lead.id or created_lead(metadata, request.lead_name)
        if lead_id is None:  # moved to a lead that is new in Close: made as the editor
            close = await services.close_clients.for_person(None, actor)
            lead_id = (await close.create_lead(request.lead_name)).id
            metadata = with_created_lead(metadata, lead_id, request.lead_name)
        body = put_body(request, changed, owner_close_id=owner_close_id, lead_id=lead_id)
        before, after = await changes.put(actor, submission, body)
    except CloseError as error:
        log.info("Edit of %s failed: %s", submission.opportunity_id, error)
        if view_id is None:
            return
        form = modal_form_from_values(values, metadata, services.catalog)
        if isinstance(error, CloseValidationError) and error.field_errors:
            errors = {
                block_for_field(f): f"Close says: {redact(t)}"
                for f, t in error.field_errors.items()
            }
            form = form.model_copy(update={"errors": errors})
        else:
            problem = (
                redact(describe_close_error(error))
                if isinstance(error, CloseValidationError)
                else ""
            )
            form = form.model_copy(
                update={
                    "warnings": [
                        f"Close did not save it{': ' + problem if problem else ''}. "
                        "Nothing changed; press Save to try again."
                    ]
                }
            )
        await show(view_id, build_opportunity_modal(form, services.catalog))
        return
    confirmation, answer = _edited(metadata, actor, submission)
    lines = await changes.publish(answer, submission, confirmation, before, after, "edited it")
    if view_id is not None:
        await show(view_id, saved_view(after, lines, close_app_url=services.settings.close_app_url))
