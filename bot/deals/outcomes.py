"""Where a submission's outcome is told: the conversation it came from, the modal, a workflow step.

`Deals` picks the sink once per submission from its ReplyTarget (`Deals.sink_for`): the
conversation (`ChannelSink`), in front of it the modal still open (`ModalSink`), or around it
the Workflow Builder step to complete (`StepSink`). The sink is told the outcome — queued,
created, failed — and says it wherever it goes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from bot.blocks import messages
from bot.blocks.modal import ModalMetadata, build_opportunity_modal
from bot.blocks.opportunity_entity import summary_card
from bot.blocks.status_views import created_view, queued_view
from bot.close.catalog import Catalog
from bot.close.client import CloseClient
from bot.close.errors import CloseValidationError
from bot.close.models import Contact, Opportunity
from bot.deals.announce import Announcer
from bot.deals.confirmation import Confirmation
from bot.deals.models import DealRequest, LeadChoice, ReplyTarget, Submission
from bot.deals.notify import Notifier, Posted
from bot.deals.prefill import form_from_request
from bot.deals.refusals import block_for_field, describe_close_error
from bot.deals.store import SubmissionStore
from bot.slack.audience import dm_by_id
from bot.slack.gateway import MessageRef, Place

log = logging.getLogger(__name__)

CONTACTS_BUDGET = 5.0


class OutcomeSink(Protocol):
    """Where one submission's outcome is told. Each method tells it there (and raises only
    what the store or Slack's transport raise: the submission is then tried again)."""

    @property
    def give_up_after(self) -> float:
        """Seconds the submission may wait for Close, counted from `waiting_since`."""
        ...

    def waiting_since(self, submission: Submission) -> datetime: ...

    async def place(self) -> Place:
        """Where the confirmation goes: the conversation, or the person's DM (`moved_from`)."""
        ...

    async def queued(self, submission: Submission) -> None:
        """Close is not answering: it is kept and retried."""
        ...

    async def created(
        self, submission: Submission, opportunity: Opportunity
    ) -> Confirmation | None:
        """In Close: confirmed. Where the confirmation lives, when it can be updated later."""
        ...

    async def failed(self, submission: Submission, reason: str, error: Exception | None) -> None:
        """Close did not take it, for good."""
        ...


class StepCompletion(Protocol):
    """Completes the Workflow Builder step behind a submission (bot/workflow). Never raises."""

    async def succeeded(self, submission: Submission, opportunity: Opportunity) -> None: ...

    async def failed(
        self, submission: Submission, reason: str, error: Exception | None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Outlets:
    """What the sinks tell with (built once, by `Deals`)."""

    store: SubmissionStore
    notifier: Notifier
    announcer: Announcer | None
    catalog: Catalog
    close: CloseClient
    close_app_url: str
    clock: Callable[[], datetime]
    # Waits until the ack's own view update has reached Slack (bot/after_ack.ack_settled).
    ack_settled: Callable[[float], Awaitable[None]]
    # WORK_OBJECTS=on: the summary carries the opportunity as a Work Object card.
    cards: bool = False

    def card(self, opportunity: Opportunity) -> dict[str, Any] | None:
        """The summary's `metadata` (its card), or None without Work Objects."""
        if not self.cards:
            return None
        return summary_card(opportunity, close_app_url=self.close_app_url)


async def confirm(
    sink: OutcomeSink, submission: Submission, opportunity: Opportunity
) -> Confirmation | None:
    """`sink.created`, any failure of it logged: the deal is in Close whatever the telling did."""
    try:
        return await sink.created(submission, opportunity)
    except Exception:
        log.exception("Could not confirm %s to %s", opportunity.id, submission.slack_user_id)
        return None


class ChannelSink:
    """The conversation the submission came from: its channel (and thread), else the command's
    response_url, else a DM. Without `fallback` (a workflow step), its channel or nowhere.

    Where the channel's readers may not see Close data (shared with another organization,
    EXTERNAL_CHANNELS=private), the whole confirmation — queued notice, summary, details, its
    thread — goes to the person's DM instead, and they get one ephemeral note in the channel
    saying so; the channel itself gets nothing with Close data (a workflow step, which never
    DMs, gets a line naming the lead only)."""

    def __init__(
        self, target: ReplyTarget, outlets: Outlets, *, fallback: bool, give_up_after: float
    ) -> None:
        self._target = target
        self._out = outlets
        self._fallback = fallback
        self.give_up_after = give_up_after
        self._place: Place | None = None

    def waiting_since(self, submission: Submission) -> datetime:
        return submission.first_attempt_at or submission.created_at

    async def place(self) -> Place:
        """Where the confirmation goes, asked of the gateway once per attempt."""
        if self._place is None:
            self._place = await self._out.notifier.place(self._target)
        return self._place

    async def queued(self, submission: Submission) -> None:
        lead = submission.request.lead_name
        place = await self.place()
        target = await self._where(place) or self._target
        # The lead's name alone: it may stay in the channel (a workflow step's), if it must.
        posted = await self._post(target, messages.queued(lead), close_data=False)
        if posted and posted.threadable and posted.channel and posted.ts:
            # Replaced by the confirmation (or the failure) in place, whoever tells it.
            await self._out.store.set_notice(
                submission.id, MessageRef(posted.channel, posted.ts), now=self._out.clock()
            )
        if posted and place.moved_from is not None and self._fallback:
            await self._note(place, lead, "queued")

    async def created(
        self, submission: Submission, opportunity: Opportunity
    ) -> Confirmation | None:
        out = self._out
        announced = (
            await out.announcer.created(
                opportunity, creator=submission.slack_user_id, logged_in=self._target.channel_id
            )
            if out.announcer
            else None
        )
        if not self._target.channel_id and not self._fallback:
            return None  # the workflow said where nothing goes: only the deals channel hears of it
        place = await self.place()
        target, notice = await self._told_at(submission, place, "logged")
        if target is None:
            return None
        # The details' buttons (Edit, Won, Lost) carry which submission, and its announcement.
        confirmation = Confirmation(
            submission.id,
            announcement=MessageRef(announced.channel, announced.ts)
            if announced and announced.channel and announced.ts
            else None,
        )
        summary = messages.summary(opportunity, creator=submission.slack_user_id)
        details = messages.details(
            opportunity, close_app_url=out.close_app_url, ref=confirmation.ref
        )
        card = out.card(opportunity)
        if notice is not None and await out.notifier.update(
            notice.channel, notice.ts, summary, metadata=card
        ):
            thread = MessageRef(notice.channel, target.thread_ts or notice.ts)
            return await self._details_in(target, confirmation, notice, thread, details)
        posted = await self._post(target, summary, metadata=card)
        if posted is None:
            log.error("Could not tell %s about %s", submission.slack_user_id, opportunity.id)
            return None
        if place.moved_from is not None:
            await self._note(place, submission.request.lead_name, "logged")
        if not (posted.threadable and posted.channel and posted.ts):
            await self._post(target, details)
            return None
        told = MessageRef(posted.channel, posted.ts)
        # Edits and Won/Lost update this summary in place, and so does a worker that tells it
        # again (this one's lease ran out before it marked it told): stored at once.
        await out.store.set_notice(submission.id, told, now=out.clock())
        root = target.thread_ts if posted.via == "channel" and target.thread_ts else told.ts
        thread = MessageRef(told.channel, root)
        return await self._details_in(target, confirmation, told, thread, details)

    async def _details_in(
        self,
        target: ReplyTarget,
        confirmation: Confirmation,
        summary: MessageRef,
        thread: MessageRef,
        details: messages.Message,
    ) -> Confirmation:
        """Post the details in `thread`: the confirmation, where changes are told later."""
        target = target.model_copy(update={"channel_id": thread.channel})
        posted = await self._post(target, details, thread_ts=thread.ts)
        return replace(
            confirmation,
            summary=summary,
            thread=thread,
            details_ts=posted.ts
            if posted is not None and posted.channel == thread.channel
            else None,
        )

    async def failed(self, submission: Submission, reason: str, error: Exception | None) -> None:
        message = messages.failed(submission.request.lead_name, reason, submission_id=submission.id)
        place = await self.place()
        target, notice = await self._told_at(submission, place, "failed")
        if target is None:
            return
        if notice is not None and await self._out.notifier.update(
            notice.channel, notice.ts, message
        ):
            return
        if await self._post(target, message) and place.moved_from is not None:
            await self._note(place, submission.request.lead_name, "failed")

    async def _where(self, place: Place) -> ReplyTarget | None:
        """The target the outcome is told at: the conversation it came from, or the person's
        DM when that conversation's readers may not see Close data (None: a workflow step's,
        which is never told in a DM)."""
        if place.moved_from is None:
            return self._target
        if not self._fallback:
            return None
        return await self._out.notifier.in_dm(self._target)

    async def _told_at(
        self, submission: Submission, place: Place, outcome: messages.Outcome
    ) -> tuple[ReplyTarget | None, MessageRef | None]:
        """Where `outcome` is told, and the stored notice it replaces in place (if any).

        A notice the channel can read, where Close data may not go (posted before the channel
        was shared, or a workflow step's queued line), is never updated with the outcome: it
        becomes a line naming the lead only — it said it would update, and the channel's readers
        learn that it landed without what they may not see (deleting it would leave them
        wondering). A workflow step, which never DMs, gets that line in the channel (None)."""
        target = await self._where(place)
        notice = Confirmation.of(submission).summary
        if place.moved_from is None or (notice is not None and dm_by_id(notice.channel)):
            return target, notice
        line = messages.withheld(submission.request.lead_name, outcome)
        if notice is not None:
            await self._out.notifier.update(notice.channel, notice.ts, line, close_data=False)
        elif target is None:
            await self._post(self._target, line, close_data=False)
        return target, None

    async def _note(self, place: Place, lead_name: str, outcome: messages.Outcome) -> None:
        """The person's one ephemeral note in the channel they logged it from: it is in the DM."""
        if place.moved_from is None:
            return
        await self._out.notifier.note(
            place.moved_from,
            self._target.user_id,
            messages.in_your_dms(lead_name, outcome),
            thread_ts=self._target.thread_ts,
        )

    async def _post(
        self,
        target: ReplyTarget,
        message: messages.Message,
        *,
        thread_ts: str | None = None,
        close_data: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> Posted | None:
        return await self._out.notifier.post(
            target,
            message,
            thread_ts=thread_ts,
            fallback=self._fallback,
            close_data=close_data,
            metadata=metadata,
        )


class ModalSink:
    """The modal the submission came from, still showing "Creating…" (since its ack), in front
    of the conversation: it shows created or queued, and Close's refusal under its fields."""

    def __init__(self, inner: OutcomeSink, view_id: str, outlets: Outlets) -> None:
        self._inner = inner
        self._view_id = view_id
        self._out = outlets

    @property
    def give_up_after(self) -> float:
        return self._inner.give_up_after

    def waiting_since(self, submission: Submission) -> datetime:
        return self._inner.waiting_since(submission)

    async def place(self) -> Place:
        return await self._inner.place()

    async def queued(self, submission: Submission) -> None:
        await self._show(submission, queued_view(submission.request.lead_name))
        await self._inner.queued(submission)

    async def created(
        self, submission: Submission, opportunity: Opportunity
    ) -> Confirmation | None:
        place = await self._inner.place()
        where = ""
        if place.moved_from is not None:
            where = f"The confirmation is in your DMs with me: {messages.SHARED_CHANNEL}."
        elif submission.reply_to.channel_id:
            where = "The confirmation is in the channel's thread."
        await self._show(
            submission,
            created_view(opportunity, close_app_url=self._out.close_app_url, where=where),
        )
        return await self._inner.created(submission, opportunity)

    async def failed(self, submission: Submission, reason: str, error: Exception | None) -> None:
        if isinstance(error, CloseValidationError) and await self._reopen_with_errors(
            submission, error
        ):
            return
        await self._inner.failed(submission, reason, error)

    async def _show(self, submission: Submission, view: dict[str, Any]) -> bool:
        # The ack's "Creating…" was sent right after the submission was stored.
        await self._out.ack_settled((self._out.clock() - submission.created_at).total_seconds())
        return await self._out.notifier.update_view(self._view_id, view)

    async def _reopen_with_errors(
        self, submission: Submission, error: CloseValidationError
    ) -> bool:
        """Put the form back in the still-open modal with Close's errors under their fields."""
        catalog = self._out.catalog
        request = submission.request
        if submission.lead_id and request.lead.id is None:
            # The new lead exists in Close now: a corrected form must not create it again.
            request = request.model_copy(update={"lead": LeadChoice(id=submission.lead_id)})
        errors = _errors_by_block(error)
        if "status" in errors:
            errors["status"] = _status_problem(catalog, request) or errors["status"]
        target = submission.reply_to
        metadata = ModalMetadata(
            key=uuid.uuid4().hex,  # a corrected resubmission is a new submission
            channel_id=target.channel_id,
            thread_ts=target.thread_ts,
            response_url=target.response_url,
        )
        owner = request.owner_slack_id or submission.slack_user_id
        form = form_from_request(request, owner=owner, metadata=metadata)
        contacts = await self._contacts_of(request.lead.id)
        form = form.model_copy(update={"errors": errors, "contacts": contacts})
        view = build_opportunity_modal(form, catalog)
        shown = {block.get("block_id") for block in view["blocks"]}
        if any(block not in shown for block in errors):
            # A field the form does not show (now): say it on the lead rather than nowhere.
            lost = [text for block, text in errors.items() if block not in shown]
            kept = {block: text for block, text in errors.items() if block in shown}
            kept["lead"] = " ".join([kept.get("lead", ""), *lost]).strip()
            view = build_opportunity_modal(form.model_copy(update={"errors": kept}), catalog)
        return await self._show(submission, view)

    async def _contacts_of(self, lead_id: str | None) -> list[Contact]:
        if lead_id is None:
            return []
        try:
            return await asyncio.wait_for(self._out.close.list_contacts(lead_id), CONTACTS_BUDGET)
        except Exception as contacts_error:  # the form still works without contacts
            log.info("Contacts for %s unavailable: %s", lead_id, type(contacts_error).__name__)
            return []


def _errors_by_block(error: CloseValidationError) -> dict[str, str]:
    """Close's field errors under the modal block that sets each field."""
    errors: dict[str, str] = {}
    for field, text in error.field_errors.items():
        block = block_for_field(field)
        errors[block] = f"{errors[block]} {text}" if block in errors else f"Close says: {text}"
    if not errors:
        errors["lead"] = f"Close refused it: {describe_close_error(error)}"
    return errors


def _status_problem(catalog: Catalog, request: DealRequest) -> str | None:
    """What changed about the chosen status since the form was built, in the user's words."""
    if request.status_id is None:
        return None
    status = catalog.status(request.status_id)
    if status is None:
        return "Close says this status no longer exists: pick one of the current ones."
    pipeline = catalog.pipeline_for_status(status.id)
    if pipeline is not None and pipeline.id != request.pipeline_id:
        return (
            f"Close says “{status.label}” is now in the {pipeline.name} pipeline: "
            "check it, then Create."
        )
    return None


class StepSink:
    """A Workflow Builder step's submission: told in the conversation it names (never a DM),
    then the step completed (`completion`: bot/workflow). It waits for Close as long as the
    step may (counted from when Slack ran it), not as long as a person would."""

    def __init__(
        self, inner: OutcomeSink, completion: StepCompletion | None, *, give_up_after: float
    ) -> None:
        self._inner = inner
        self._completion = completion
        self.give_up_after = give_up_after

    def waiting_since(self, submission: Submission) -> datetime:
        return submission.created_at  # when Slack ran the step

    async def place(self) -> Place:
        return await self._inner.place()

    async def queued(self, submission: Submission) -> None:
        await self._inner.queued(submission)

    async def created(
        self, submission: Submission, opportunity: Opportunity
    ) -> Confirmation | None:
        confirmation = await confirm(self._inner, submission, opportunity)
        if self._completion is not None:
            await self._completion.succeeded(submission, opportunity)
        return confirmation

    async def failed(self, submission: Submission, reason: str, error: Exception | None) -> None:
        await self._inner.failed(submission, reason, error)
        if self._completion is not None:
            await self._completion.failed(submission, reason, error)
