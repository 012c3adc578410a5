"""The use case: accept a validated submission durably, then create it in Close exactly once."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.blocks import messages
from bot.blocks.modal import ModalMetadata, build_opportunity_modal
from bot.blocks.status_views import created_view, queued_view
from bot.close.catalog import Catalog
from bot.close.client import CloseClient
from bot.close.errors import (
    CloseAuthError,
    CloseError,
    CloseHTTPError,
    CloseOutcomeUnknown,
    CloseRateLimited,
    CloseValidationError,
)
from bot.close.models import Contact, Lead, Opportunity
from bot.deals.announce import Announcer
from bot.deals.models import DealRequest, LeadChoice, ReplyTarget, Submission, SubmissionState
from bot.deals.notify import Notifier, Posted
from bot.deals.prefill import form_from_request
from bot.deals.store import SubmissionStore, ThreadPlace
from bot.jobs import Backoff, LostClaim
from bot.slack.after_ack import ack_settled

log = logging.getLogger(__name__)

FIELD_NAMES = {
    "lead": "lead",
    "lead_id": "lead",
    "status": "status",
    "status_id": "status",
    "pipeline": "status",
    "pipeline_id": "status",
    "value": "value",
    "value_period": "value_period",
    "confidence": "confidence",
    "date_won": "date_won",
    "user": "owner",
    "user_id": "owner",
    "contact": "contact",
    "contact_id": "contact",
    "note": "note",
}

# A 400 on these means the org's statuses/pipelines changed since the catalog loaded.
STALE_METADATA_FIELDS = frozenset({"status", "status_id", "pipeline", "pipeline_id"})
CONTACTS_BUDGET = 5.0


def block_for_field(field: str) -> str:
    """The modal block a Close `field-errors` key belongs to (custom.cf_x stays custom.cf_x)."""
    return FIELD_NAMES.get(field, field if field.startswith("custom.") else "lead")


def describe_close_error(error: CloseHTTPError) -> str:
    if error.field_errors:
        return "; ".join(f"{field}: {text}" for field, text in error.field_errors.items())
    return "; ".join(error.errors) or error.message or f"HTTP {error.status_code}"


# Close statuses worth asking again (besides 429, handled as rate limiting).
RETRYABLE_STATUSES = frozenset({408, 409, 425})
# Close's clock and ours may disagree a little: look a bit before the first attempt.
RECONCILE_SKEW = timedelta(minutes=5)


class EarlierWriteInFlight(Exception):
    """An earlier attempt's create may still be on its way to Close: look after `until`."""

    def __init__(self, until: datetime) -> None:
        super().__init__(
            f"an earlier attempt's request may still reach Close until {until:%H:%M:%S}"
        )
        self.until = until


class RetryPolicy(Backoff):
    """The submissions' schedule (the one backoff, base and max as the settings give them) and
    their give-up bounds; a workflow step's reading retries on it too."""

    give_up_after_seconds: float = 3600.0
    # A workflow step's bound, counted from when Slack ran the step (WORKFLOW_STEP_GIVE_UP_SECONDS).
    step_give_up_after_seconds: float = 600.0

    def give_up_after(self, submission: Submission) -> float:
        if submission.reply_to.workflow_step:
            return self.step_give_up_after_seconds
        return self.give_up_after_seconds


class StepOutcomes(Protocol):
    """Completes the Workflow Builder step behind a submission (bot/workflow). Never raises."""

    async def succeeded(self, submission: Submission, opportunity: Opportunity) -> None: ...

    async def failed(
        self, submission: Submission, reason: str, error: Exception | None
    ) -> None: ...


class Deals:
    def __init__(
        self,
        *,
        store: SubmissionStore,
        close: CloseClient,
        catalog: Catalog,
        notifier: Notifier,
        close_app_url: str,
        announcer: Announcer | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        write_window: timedelta = timedelta(seconds=20),
    ) -> None:
        self.store = store
        # How long a create sent by an earlier attempt may still be on its way to Close (the
        # Close client's timeout and a margin): a worker that took the submission over waits
        # this out before looking in Close, or the other one's request could land after the
        # look and the deal be created twice.
        self._write_window = write_window
        self._close = close
        self._catalog = catalog
        self._notifier = notifier
        self._close_app_url = close_app_url
        self._announcer = announcer
        self.retry = retry or RetryPolicy()
        self._clock = clock
        # Set when the app has the workflow step: its submissions end by completing the step.
        self.steps: StepOutcomes | None = None

    async def accept(
        self,
        *,
        idempotency_key: str,
        request: DealRequest,
        reply_to: ReplyTarget,
        slack_user_id: str,
        team_id: str | None,
        received_at: datetime | None = None,
    ) -> tuple[Submission, bool]:
        """`received_at`: when Slack sent it, if earlier than now (a workflow step's inputs are
        read after its ack); the retry bound of a workflow step counts from it."""
        return await self.store.accept(
            idempotency_key=idempotency_key,
            request=request,
            reply_to=reply_to,
            slack_user_id=slack_user_id,
            team_id=team_id,
            now=received_at or self._clock(),
        )

    async def process(self, submission: Submission) -> None:
        """Work one claimed submission until the user is told an outcome. Never raises.

        If anything goes wrong with the store itself, the claim simply runs out and the
        submission is claimed again (by this or another instance): nothing is lost.
        """
        try:
            await self._attempt(submission)
        except LostClaim:
            log.warning("Submission %s was taken over by another worker", submission.id)
        except Exception:
            log.exception("Could not finish submission %s; it will be claimed again", submission.id)

    async def _attempt(self, submission: Submission) -> None:
        work = submission  # what this attempt learned so far (the lead), kept on failure
        try:
            if submission.state == SubmissionState.CREATED and submission.response:
                # Close has it and we recorded it, then stopped before telling anyone.
                opportunity = Opportunity.model_validate(submission.response)
            else:
                lead_id, new_lead = await self._lead_for(work)
                work = work.model_copy(update={"lead_id": lead_id})
                opportunity = await self._find_or_create(work, lead_id, new_lead=new_lead)
                work = work.model_copy(update={"state": SubmissionState.CREATED})
        except LostClaim:
            raise
        except EarlierWriteInFlight as wait:
            # Not a failure and nothing to tell: look again once that request has settled.
            log.info("Submission %s waits for an earlier attempt's create", submission.id)
            if not await self.store.retry_at(
                work, at=wait.until, error=str(wait), now=self._clock()
            ):
                raise LostClaim(submission.id) from None
        except CloseRateLimited as error:
            await self._retry_later(work, error)
        except (CloseValidationError, CloseAuthError) as error:
            await self._fail(work, describe_close_error(error), error)
        except CloseHTTPError as error:
            if error.status_code in RETRYABLE_STATUSES:
                await self._retry_later(work, error)
            else:  # 402 plan limit, 404 lead deleted…: asking again will not help
                await self._fail(work, describe_close_error(error), error)
        except CloseError as error:  # unreachable, 5xx, or an unanswered write
            await self._retry_later(work, error)
        except Exception as error:  # a bug must not lose the submission: keep it, retry later
            log.exception("Unexpected error working submission %s", submission.id)
            await self._retry_later(work, error)
        else:
            await self._finish(work, opportunity)

    async def _lead_for(self, submission: Submission) -> tuple[str, bool]:
        """The lead's id, and whether it is a new lead still to be recorded (with `sent`)."""
        lead_id = submission.lead_id or submission.request.lead.id
        if lead_id is not None:
            return lead_id, False
        lead = await self._new_lead(submission)
        if submission.attempts <= 1:
            # Nothing but building the request comes before `record_sent` on a first attempt:
            # the lead is recorded with it, one write fewer. (Lost only if that build failed;
            # the next attempt then finds the lead by name before creating one.)
            return lead.id, True
        # A later attempt looks in Close before sending: the lead is recorded first.
        if not await self.store.set_lead(submission, lead.id, now=self._clock()):
            raise LostClaim(submission.id)
        return lead.id, False

    async def _new_lead(self, submission: Submission) -> Lead:
        name = submission.request.lead.new_name or submission.request.lead_name
        if submission.attempts > 1:
            # An earlier attempt may have created the lead before dying: reuse it.
            for lead in await self._close.search_leads(name, limit=5):
                if lead.label.strip().casefold() == name.strip().casefold():
                    return lead
        return await self._close.create_lead(name)

    async def _find_or_create(
        self, submission: Submission, lead_id: str, *, new_lead: bool = False
    ) -> Opportunity:
        """Create it in Close once: after any earlier attempt, look before sending again.

        `new_lead`: `lead_id` was just created in Close and is not stored yet.
        """
        opportunity = None
        if submission.attempts > 1:
            self._check_earlier_write(submission)
            opportunity = await self._already_created(submission, lead_id)
        if opportunity is None:
            request = submission.request
            body = request.to_create(lead_id)
            sent = {
                "method": "POST",
                "path": "/opportunity/",
                "tz_offset_hours": request.tz_offset_hours,
                "json": body.to_close(),
                "attempt": submission.attempts,
                "at": self._clock().isoformat(),
            }
            # Audited before it goes out; also the last check that the claim is still ours.
            if not await self.store.record_sent(
                submission, sent, now=self._clock(), lead_id=lead_id if new_lead else None
            ):
                raise LostClaim(submission.id)
            opportunity = await self._close.create_opportunity(
                body, tz_offset_hours=request.tz_offset_hours
            )
            log.info("Created %s for submission %s", opportunity.id, submission.id)
        await self._record_created(submission, lead_id, opportunity)
        return opportunity

    def _check_earlier_write(self, submission: Submission) -> None:
        """Raise EarlierWriteInFlight while the create an earlier attempt sent (its worker
        stalled past its lease, say) may still reach Close."""
        if not submission.taken_over:
            return  # the earlier attempt ended (answered, or its request timed out) and said so
        sent_at = (submission.sent or {}).get("at")
        try:
            sent = datetime.fromisoformat(str(sent_at)) if sent_at else None
        except ValueError:
            sent = None
        if sent is None:
            return
        settled = sent + self._write_window
        if self._clock() < settled:
            raise EarlierWriteInFlight(settled)

    async def _record_created(
        self, submission: Submission, lead_id: str, opportunity: Opportunity
    ) -> Submission:
        recorded = await self.store.record_created(
            submission,
            lead_id=lead_id,
            opportunity_id=opportunity.id,
            response=opportunity.model_dump(mode="json"),
            now=self._clock(),
        )
        if not recorded:
            raise LostClaim(submission.id)  # whoever holds it now will find it by reconciling
        return submission.model_copy(update={"state": SubmissionState.CREATED})

    async def _already_created(self, submission: Submission, lead_id: str) -> Opportunity | None:
        """Reconcile: an earlier attempt may have reached Close and died before the answer.

        A match is an opportunity on the lead, created since the first attempt (with room
        for clock skew), with the same value, owner and note, that no other submission
        already owns (two identical deals logged on purpose stay two).
        """
        since = (submission.first_attempt_at or submission.created_at) - RECONCILE_SKEW
        request = submission.request
        candidates = [
            candidate
            for candidate in await self._close.list_opportunities(
                lead_id=lead_id, date_created_gte=since
            )
            if candidate.value == request.value
            and (request.user_id is None or candidate.user_id == request.user_id)
            and (candidate.note or "").strip() == (request.note or "").strip()
        ]
        if not candidates:
            return None
        taken = await self.store.recorded_elsewhere(
            (c.id for c in candidates), excluding=submission.id
        )
        free = sorted(
            (c for c in candidates if c.id not in taken), key=lambda c: c.date_created or ""
        )
        if not free:
            return None
        log.info("Reconciled submission %s with %s", submission.id, free[0].id)
        return free[0]

    async def _finish(self, submission: Submission, opportunity: Opportunity) -> None:
        # Tell first, then mark: a crash in between repeats the message, never the deal.
        told = _Told()
        try:
            await self._confirm(submission, opportunity, told)
        except Exception:
            log.exception("Could not confirm %s to %s", opportunity.id, submission.slack_user_id)
        if submission.reply_to.workflow_step and self.steps is not None:
            await self.steps.succeeded(submission, opportunity)
        # The thread it was told in is stored with the mark, in one write.
        if not await self.store.mark_confirmed(submission, now=self._clock(), thread=told.thread):
            raise LostClaim(submission.id)

    async def _confirm(self, submission: Submission, opportunity: Opportunity, told: _Told) -> None:
        target = submission.reply_to
        if target.workflow_step and not target.channel_id:
            # The workflow said where nothing goes: only the deals channel hears of it.
            if self._announcer:
                await self._announcer.created(
                    opportunity, creator=submission.slack_user_id, logged_in=None
                )
            return
        if target.view_id:
            where = "The confirmation is in the channel's thread." if target.channel_id else ""
            await self._update_modal(
                submission,
                created_view(opportunity, close_app_url=self._close_app_url, where=where),
            )
        summary = messages.summary(opportunity, creator=submission.slack_user_id)
        announced = (
            await self._announcer.created(
                opportunity, creator=submission.slack_user_id, logged_in=target.channel_id
            )
            if self._announcer
            else None
        )
        # The buttons (Edit, Won, Lost) carry which submission, and where it was announced.
        ref = messages.ConfirmationRef(
            submission_id=submission.id,
            announce_channel=announced.channel if announced else None,
            announce_ts=announced.ts if announced else None,
        )
        details = messages.details(opportunity, close_app_url=self._close_app_url, ref=ref)
        if submission.notice_channel and submission.notice_ts:
            updated = await self._notifier.update(
                submission.notice_channel, submission.notice_ts, summary
            )
            if updated:
                thread_ts = target.thread_ts or submission.notice_ts
                posted_details = await self._notifier.post(
                    target.model_copy(update={"channel_id": submission.notice_channel}),
                    details,
                    thread_ts=thread_ts,
                )
                told.thread = _thread_place(
                    submission.notice_channel, thread_ts, posted_details, ref
                )
                return
        posted = await self._notifier.post(target, summary)
        if posted is None:
            log.error("Could not tell %s about %s", submission.slack_user_id, opportunity.id)
            return
        if posted.channel and posted.ts:
            # Edits and Won/Lost update this summary in place, and so does a worker that tells
            # it again (this one's lease ran out before it marked it told): stored at once.
            await self.store.set_notice(
                submission.id, channel=posted.channel, ts=posted.ts, now=self._clock()
            )
        if posted.threadable and posted.channel and posted.ts:
            thread_ts = (
                target.thread_ts if posted.via == "channel" and target.thread_ts else posted.ts
            )
            posted_details = await self._notifier.post(
                target.model_copy(update={"channel_id": posted.channel}),
                details,
                thread_ts=thread_ts,
            )
            told.thread = _thread_place(posted.channel, thread_ts, posted_details, ref)
        else:
            await self._notifier.post(target, details)

    async def _reopen_with_errors(
        self, submission: Submission, error: CloseValidationError
    ) -> bool:
        """Put the form back in the still-open modal with Close's errors under their fields."""
        if STALE_METADATA_FIELDS.intersection(error.field_errors):
            await self._refresh_catalog()  # so the form offers Close's statuses as they are now
        view_id = submission.reply_to.view_id
        if view_id is None:
            return False
        request = submission.request
        if submission.lead_id and request.lead.id is None:
            # The new lead exists in Close now: a corrected form must not create it again.
            request = request.model_copy(update={"lead": LeadChoice(id=submission.lead_id)})
        errors: dict[str, str] = {}
        for field, text in error.field_errors.items():
            block = block_for_field(field)
            errors[block] = f"{errors[block]} {text}" if block in errors else f"Close says: {text}"
        if not errors:
            errors["lead"] = f"Close refused it: {describe_close_error(error)}"
        if "status" in errors:
            errors["status"] = self._status_problem(request) or errors["status"]
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
        view = build_opportunity_modal(form, self._catalog)
        shown = {block.get("block_id") for block in view["blocks"]}
        if any(block not in shown for block in errors):
            # A field the form does not show (now): say it on the lead rather than nowhere.
            lost = [text for block, text in errors.items() if block not in shown]
            kept = {block: text for block, text in errors.items() if block in shown}
            kept["lead"] = " ".join([kept.get("lead", ""), *lost]).strip()
            view = build_opportunity_modal(form.model_copy(update={"errors": kept}), self._catalog)
        return await self._update_modal(submission, view)

    async def _refresh_catalog(self) -> None:
        try:
            await self._catalog.refresh()
        except CloseError as refresh_error:
            log.warning("Catalog refresh after a status error failed: %s", refresh_error)

    def _status_problem(self, request: DealRequest) -> str | None:
        """What changed about the chosen status since the form was built, in the user's words."""
        if request.status_id is None:
            return None
        status = self._catalog.status(request.status_id)
        if status is None:
            return "Close says this status no longer exists: pick one of the current ones."
        pipeline = self._catalog.pipeline_for_status(status.id)
        if pipeline is not None and pipeline.id != request.pipeline_id:
            return (
                f"Close says “{status.label}” is now in the {pipeline.name} pipeline: "
                "check it, then Create."
            )
        return None

    async def _contacts_of(self, lead_id: str | None) -> list[Contact]:
        if lead_id is None:
            return []
        try:
            return await asyncio.wait_for(self._close.list_contacts(lead_id), CONTACTS_BUDGET)
        except Exception as contacts_error:  # the form still works without contacts
            log.info("Contacts for %s unavailable: %s", lead_id, type(contacts_error).__name__)
            return []

    async def _retry_later(self, submission: Submission, error: Exception) -> None:
        now = self._clock()
        started = submission.first_attempt_at or submission.created_at
        if submission.reply_to.workflow_step:
            started = submission.created_at  # when Slack ran the step
        reason = _describe(error)
        left = self.retry.give_up_after(submission) - (now - started).total_seconds()
        if left <= 0:
            await self._give_up(submission, reason, error)
            return
        delay = self.retry.delay(submission.attempts)
        if isinstance(error, CloseRateLimited):
            delay = max(delay, error.retry_after)
        # The last attempt comes at the deadline, not a whole backoff after it.
        delay = min(delay, left)
        # Said while the claim is still ours, so whoever lands it later can update the notice.
        if await self.store.claim_queued_notice(submission, now=now):
            await self._tell_queued(submission)
        at = self._clock() + timedelta(seconds=delay)
        if not await self.store.retry_at(submission, at=at, error=reason, now=self._clock()):
            raise LostClaim(submission.id)
        log.info("Submission %s will be retried at %s: %s", submission.id, at, reason)

    async def _update_modal(self, submission: Submission, view: dict[str, Any]) -> bool:
        """Replace the modal the submission came from ("Creating…" since its ack), if any."""
        if submission.reply_to.view_id is None:
            return False
        # The ack's "Creating…" was sent right after the submission was stored.
        await ack_settled((self._clock() - submission.created_at).total_seconds())
        return await self._notifier.update_view(submission.reply_to.view_id, view)

    async def _tell_queued(self, submission: Submission) -> None:
        await self._update_modal(submission, queued_view(submission.request.lead_name))
        posted = await self._notifier.post(
            submission.reply_to, messages.queued(submission.request.lead_name)
        )
        if posted and posted.threadable and posted.channel and posted.ts:
            await self.store.set_notice(
                submission.id, channel=posted.channel, ts=posted.ts, now=self._clock()
            )

    async def _give_up(self, submission: Submission, reason: str, error: Exception) -> None:
        """Past the deadline: one last look in Close, then a clear failure."""
        unsure = ""
        lead_id = submission.lead_id or submission.request.lead.id
        if lead_id is not None:
            try:
                found = await self._already_created(submission, lead_id)
            except CloseError as look_error:
                found = None
                unsure = (
                    " It may have reached Close anyway: check the lead before trying again."
                    if isinstance(error, CloseOutcomeUnknown)
                    else ""
                )
                log.warning("Last look for submission %s failed: %s", submission.id, look_error)
            if found is not None:
                await self._finish(await self._record_created(submission, lead_id, found), found)
                return
        waited = duration(self.retry.give_up_after(submission))
        await self._fail(
            submission,
            f"Close did not accept it for {waited} (last error: {reason}).{unsure}",
            error,
        )

    async def _fail(self, submission: Submission, reason: str, error: Exception | None) -> None:
        response = None
        if isinstance(error, CloseHTTPError):
            response = {
                "status": error.status_code,
                "errors": error.errors,
                "field-errors": error.field_errors,
            }
        log.warning("Submission %s failed: %s", submission.id, reason)
        # Tell first, then mark: a crash in between tells twice rather than never.
        if not (
            isinstance(error, CloseValidationError)
            and await self._reopen_with_errors(submission, error)
        ):
            await self._tell_failed(submission, reason)
        if submission.reply_to.workflow_step and self.steps is not None:
            await self.steps.failed(submission, reason, error)
        if not await self.store.mark_failed(
            submission, error=reason, response=response, now=self._clock()
        ):
            raise LostClaim(submission.id)

    async def _tell_failed(self, submission: Submission, reason: str) -> None:
        message = messages.failed(submission.request.lead_name, reason, submission_id=submission.id)
        if (
            submission.notice_channel
            and submission.notice_ts
            and await self._notifier.update(
                submission.notice_channel, submission.notice_ts, message
            )
        ):
            return
        await self._notifier.post(submission.reply_to, message)


@dataclass
class _Told:
    """Where a confirmation's thread is, stored when the submission is marked confirmed."""

    thread: ThreadPlace | None = None


def _thread_place(
    channel: str, thread_ts: str, details: Posted | None, ref: messages.ConfirmationRef
) -> ThreadPlace:
    """Where changes made in Close will be told: this thread, these messages."""
    same_channel = details is not None and details.channel == channel
    return ThreadPlace(
        channel=channel,
        thread_ts=thread_ts,
        details_ts=details.ts if same_channel and details is not None else None,
        announce_channel=ref.announce_channel,
        announce_ts=ref.announce_ts,
    )


def _describe(error: Exception) -> str:
    if isinstance(error, CloseError):
        return str(error)
    return f"an unexpected error ({type(error).__name__})"


def duration(seconds: float) -> str:
    if seconds < 120:
        whole = round(seconds)
        return f"{whole} second" if whole == 1 else f"{whole} seconds"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.0f} hours"
