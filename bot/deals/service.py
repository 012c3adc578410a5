"""The use case: accept a validated submission durably, then create it in Close exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.close.catalog import Catalog
from bot.close.client import CloseClient
from bot.close.errors import (
    CloseAccessBroken,
    CloseAuthError,
    CloseError,
    CloseHTTPError,
    CloseNotConnected,
    CloseOutcomeUnknown,
    CloseRateLimited,
    CloseValidationError,
)
from bot.close.models import Lead, Opportunity
from bot.connections import CloseClients
from bot.deals.announce import Announcer
from bot.deals.attribution import Attribution
from bot.deals.models import DealRequest, ReplyTarget, Submission, SubmissionState
from bot.deals.notify import Notifier
from bot.deals.outcomes import (
    ChannelSink,
    ModalSink,
    OutcomeSink,
    Outlets,
    StepCompletion,
    StepSink,
    confirm,
)
from bot.deals.refusals import STALE_METADATA_FIELDS, cannot_act, describe_close_error
from bot.deals.store import OpportunityTaken, SubmissionStore
from bot.jobs import Backoff, LostClaim
from bot.slack.after_ack import ack_settled

log = logging.getLogger(__name__)

# Close statuses worth asking again (besides 429, handled as rate limiting).
RETRYABLE_STATUSES = frozenset({408, 409, 425})
# Close's clock and ours may disagree a little: look a bit before the first attempt.
RECONCILE_SKEW = timedelta(minutes=5)
# A submission whose person must (re)connect Close first is looked at again this often (or
# the retry ceiling, if lower): it waits for them however long (no give-up), and goes on
# within this long of their reconnecting.
ACCESS_WAIT = timedelta(seconds=60)
# Identical submissions reconciling at once: at most this many looks (one fewer free each).
RECONCILE_ROUNDS = 5


def access_wait(slack_user_id: str) -> str:
    """How a submission waiting for its person's Close access begins its `error`."""
    return f"waiting for <@{slack_user_id}> to connect Close again"


class EarlierWriteInFlight(Exception):
    """An earlier attempt's create may still be on its way to Close: look after `until`."""

    def __init__(self, until: datetime) -> None:
        super().__init__(
            f"an earlier attempt's request may still reach Close until {until:%H:%M:%S}"
        )
        self.until = until


class RetryPolicy(Backoff):
    """The submissions' schedule (the one backoff, base and max as the settings give them) and
    their give-up bounds (which one: the submission's sink says); a workflow step's reading
    retries on it too."""

    give_up_after_seconds: float = 3600.0
    # A workflow step's bound, counted from when Slack ran the step (WORKFLOW_STEP_GIVE_UP_SECONDS).
    step_give_up_after_seconds: float = 600.0


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
        steps: StepCompletion | None = None,
        close_clients: CloseClients | None = None,
        attribution: Attribution | None = None,
        kick: Callable[[], None] = lambda: None,
        cards: bool = False,
    ) -> None:
        self.store = store
        # Who Close shows as the creator of a deal the key creates (`created_by`).
        self._attribution = attribution or Attribution(None, None, clock)
        # Whose Close a submission is created with (CLOSE_ACCESS): None, the key's always.
        self._clients = close_clients
        # How long a create sent by an earlier attempt may still be on its way to Close (the
        # Close client's timeout and a margin): a worker that took the submission over waits
        # this out before looking in Close, or the other one's request could land after the
        # look and the deal be created twice.
        self._write_window = write_window
        self._close = close
        self._catalog = catalog
        self.retry = retry or RetryPolicy()
        self._clock = clock
        # Where outcomes are told (`sink_for`).
        self._outlets = Outlets(
            store=store,
            notifier=notifier,
            announcer=announcer,
            catalog=catalog,
            close=close,
            close_app_url=close_app_url,
            clock=clock,
            ack_settled=ack_settled,
            cards=cards,  # WORK_OBJECTS=on: the summary carries its opportunity as a card
        )
        # When the app has the workflow step: its submissions end by completing the step.
        self.steps = steps
        # Wakes the job runner (Services: the runner's kick).
        self._kick = kick

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

    async def resume_waiting(self, slack_user_id: str) -> int:
        """They (re)connected Close: their submissions waiting for that are due now (in the
        database, so whichever process works submissions sees it) and the runner here is
        woken. How many."""
        resumed = await self.store.due_now(
            slack_user_id, waiting=access_wait(slack_user_id), now=self._clock()
        )
        if resumed:
            log.info("%d submission(s) of %s resume now", resumed, slack_user_id)
            self._kick()
        return resumed

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
        sink = self.sink_for(submission)
        try:
            if submission.state == SubmissionState.CREATED and submission.response:
                # Close has it and we recorded it, then stopped before telling anyone.
                opportunity = Opportunity.model_validate(submission.response)
            else:
                close = await self._close_for(work)
                lead_id, new_lead = await self._lead_for(work, close)
                work = work.model_copy(update={"lead_id": lead_id})
                opportunity = await self._find_or_create(work, lead_id, close, new_lead=new_lead)
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
        except (CloseNotConnected, CloseAccessBroken) as error:
            await self._wait_for_access(work, error, sink)
        except CloseRateLimited as error:
            await self._retry_later(work, error, sink)
        except (CloseValidationError, CloseAuthError) as error:
            await self._fail(work, describe_close_error(error), error, sink)
        except CloseHTTPError as error:
            if error.status_code in RETRYABLE_STATUSES:
                await self._retry_later(work, error, sink)
            else:  # 402 plan limit, 404 lead deleted…: asking again will not help
                await self._fail(work, describe_close_error(error), error, sink)
        except CloseError as error:  # unreachable, 5xx, or an unanswered write
            await self._retry_later(work, error, sink)
        except Exception as error:  # a bug must not lose the submission: keep it, retry later
            log.exception("Unexpected error working submission %s", submission.id)
            await self._retry_later(work, error, sink)
        else:
            await self._finish(work, opportunity, sink)

    async def _close_for(self, submission: Submission) -> CloseClient:
        """The Close client that creates it: the person's own access where that is theirs
        (CLOSE_ACCESS), so Close shows them as its creator; else the key's."""
        if self._clients is None:  # (under CLOSE_ACCESS=key, for_person answers with no lookup)
            return self._close
        # One that waited for them to reconnect rereads their connection: they may have done
        # so through another process, which this one's remembered answer would not show yet.
        waited = (submission.error or "").startswith(access_wait(submission.slack_user_id))
        return await self._clients.for_person(
            submission.team_id, submission.slack_user_id, fresh=waited
        )

    async def _wait_for_access(
        self,
        submission: Submission,
        error: CloseNotConnected | CloseAccessBroken,
        sink: OutcomeSink,
    ) -> None:
        """Their Close access must be mended first: it waits for them (never created with
        anyone else's, never given up), and they are asked once to reconnect. But a workflow
        step's: past the step's bound, it fails saying what to do (a run cannot wait for ever)."""
        now = self._clock()
        waited = (now - sink.waiting_since(submission)).total_seconds()
        if submission.reply_to.workflow_step is not None and waited >= sink.give_up_after:
            who = f"<@{submission.slack_user_id}>"
            broken = isinstance(error, CloseAccessBroken)
            await self._fail(submission, cannot_act(who, broken=broken), error, sink)
            return
        why = f"{access_wait(submission.slack_user_id)} ({error})"
        at = now + min(ACCESS_WAIT, timedelta(seconds=self.retry.max_seconds))
        if not await self.store.retry_at(submission, at=at, error=why, now=now):
            raise LostClaim(submission.id)
        log.info("Submission %s waits for its person's Close access", submission.id)
        if isinstance(error, CloseAccessBroken) and self._clients is not None:
            await self._clients.tell_broken(submission.team_id, submission.slack_user_id)

    async def _lead_for(self, submission: Submission, close: CloseClient) -> tuple[str, bool]:
        """The lead's id, and whether it is a new lead still to be recorded (with `sent`)."""
        lead_id = submission.lead_id or submission.request.lead.id
        if lead_id is not None:
            return lead_id, False
        lead = await self._new_lead(submission, close)
        if submission.attempts <= 1:
            # Nothing but building the request comes before `record_sent` on a first attempt:
            # the lead is recorded with it, one write fewer. (Lost only if that build failed;
            # the next attempt then finds the lead by name before creating one.)
            return lead.id, True
        # A later attempt looks in Close before sending: the lead is recorded first.
        if not await self.store.set_lead(submission, lead.id, now=self._clock()):
            raise LostClaim(submission.id)
        return lead.id, False

    async def _new_lead(self, submission: Submission, close: CloseClient) -> Lead:
        name = submission.request.lead.new_name or submission.request.lead_name
        if submission.attempts > 1:
            # An earlier attempt may have created the lead before dying: reuse it.
            for lead in await close.search_leads(name, limit=5):
                if lead.label.strip().casefold() == name.strip().casefold():
                    return lead
        return await close.create_lead(name)

    async def _find_or_create(
        self, submission: Submission, lead_id: str, close: CloseClient, *, new_lead: bool = False
    ) -> Opportunity:
        """Create it in Close once: after any earlier attempt, look before sending again.

        `new_lead`: `lead_id` was just created in Close and is not stored yet.
        """
        if submission.attempts > 1:
            self._check_earlier_write(submission)
            reconciled = await self._reconciled(submission, lead_id, close)
            if reconciled is not None:
                return reconciled
        request = submission.request
        body = request.to_create(lead_id)
        creator = await self._attribution.creator(submission, close)
        sent = {
            "method": "POST",
            "path": "/opportunity/",
            "tz_offset_hours": request.tz_offset_hours,
            "json": body.to_close(),
            "attempt": submission.attempts,
            "at": self._clock().isoformat(),
            "on_behalf_of": creator,  # `created_by`, unless Close refuses it from the key
        }
        # Audited before it goes out; also the last check that the claim is still ours.
        if not await self.store.record_sent(
            submission, sent, now=self._clock(), lead_id=lead_id if new_lead else None
        ):
            raise LostClaim(submission.id)
        opportunity = await close.create_opportunity(
            body, tz_offset_hours=request.tz_offset_hours, on_behalf_of=creator
        )
        if creator is not None:
            await self._attribution.learned(close)
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

    async def _reconciled(
        self, submission: Submission, lead_id: str, close: CloseClient
    ) -> Opportunity | None:
        """An earlier attempt's opportunity, recorded as this submission's; None when Close has
        none that is free. Two identical submissions reconciling at once may both find the
        same one: the store records it for the first, and the other looks again (it is no
        longer free then: each round there is one candidate fewer)."""
        for _ in range(RECONCILE_ROUNDS):
            found = await self._already_created(submission, lead_id, close)
            if found is None:
                return None
            try:
                await self._record_created(submission, lead_id, found)
            except OpportunityTaken:
                log.info("%s went to another submission: %s looks again", found.id, submission.id)
                continue
            return found
        raise OpportunityTaken(f"every opportunity found for {submission.id}")

    async def _already_created(
        self, submission: Submission, lead_id: str, close: CloseClient
    ) -> Opportunity | None:
        """Reconcile: an earlier attempt may have reached Close and died before the answer.

        A match is an opportunity on the lead, created since the first attempt (with room
        for clock skew), with the same value, owner and note, that no other submission
        already owns (two identical deals logged on purpose stay two).
        """
        since = (submission.first_attempt_at or submission.created_at) - RECONCILE_SKEW
        request = submission.request
        candidates = [
            candidate
            for candidate in await close.list_opportunities(lead_id=lead_id, date_created_gte=since)
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

    def sink_for(self, submission: Submission) -> OutcomeSink:
        """Where this submission's outcome is told, chosen once from its ReplyTarget: the
        conversation it came from, the modal in front of it, a workflow step around it."""
        target = submission.reply_to
        workflow = target.workflow_step is not None
        sink: OutcomeSink = ChannelSink(
            target,
            self._outlets,
            fallback=not workflow,  # a workflow decides what else to say: never a DM
            give_up_after=self.retry.give_up_after_seconds,
        )
        if target.view_id is not None:
            sink = ModalSink(sink, target.view_id, self._outlets)
        if workflow:
            sink = StepSink(sink, self.steps, give_up_after=self.retry.step_give_up_after_seconds)
        return sink

    async def _finish(
        self, submission: Submission, opportunity: Opportunity, sink: OutcomeSink
    ) -> None:
        # Tell first, then mark: a crash in between repeats the message, never the deal.
        confirmation = await confirm(sink, submission, opportunity)
        # Where it was told is stored with the mark, in one write.
        if not await self.store.mark_confirmed(
            submission, now=self._clock(), confirmation=confirmation
        ):
            raise LostClaim(submission.id)

    async def _refresh_catalog(self) -> None:
        try:
            await self._catalog.refresh()
        except CloseError as refresh_error:
            log.warning("Catalog refresh after a status error failed: %s", refresh_error)

    async def _retry_later(
        self, submission: Submission, error: Exception, sink: OutcomeSink
    ) -> None:
        now = self._clock()
        reason = _describe(error)
        waited = (now - sink.waiting_since(submission)).total_seconds()
        left = sink.give_up_after - waited
        if left <= 0:
            await self._give_up(submission, reason, error, sink)
            return
        delay = self.retry.delay(submission.attempts)
        if isinstance(error, CloseRateLimited):
            delay = max(delay, error.retry_after)
        # The last attempt comes at the deadline, not a whole backoff after it.
        delay = min(delay, left)
        # Said while the claim is still ours, so whoever lands it later can update the notice.
        if await self.store.claim_queued_notice(submission, now=now):
            await sink.queued(submission)
        at = self._clock() + timedelta(seconds=delay)
        if not await self.store.retry_at(submission, at=at, error=reason, now=self._clock()):
            raise LostClaim(submission.id)
        log.info("Submission %s will be retried at %s: %s", submission.id, at, reason)

    async def _give_up(
        self, submission: Submission, reason: str, error: Exception, sink: OutcomeSink
    ) -> None:
        """Past the deadline: one last look in Close, then a clear failure."""
        unsure = ""
        lead_id = submission.lead_id or submission.request.lead.id
        if lead_id is not None:
            try:
                close = await self._close_for(submission)
                found = await self._already_created(submission, lead_id, close)
            except CloseError as look_error:
                found = None
                unsure = (
                    " It may have reached Close anyway: check the lead before trying again."
                    if isinstance(error, CloseOutcomeUnknown)
                    else ""
                )
                log.warning("Last look for submission %s failed: %s", submission.id, look_error)
            if found is not None:
                created = await self._record_created(submission, lead_id, found)
                await self._finish(created, found, sink)
                return
        waited = duration(sink.give_up_after)
        await self._fail(
            submission,
            f"Close did not accept it for {waited} (last error: {reason}).{unsure}",
            error,
            sink,
        )

    async def _fail(
        self, submission: Submission, reason: str, error: Exception | None, sink: OutcomeSink
    ) -> None:
        response = None
        if isinstance(error, CloseHTTPError):
            response = {
                "status": error.status_code,
                "errors": error.errors,
                "field-errors": error.field_errors,
            }
        log.warning("Submission %s failed: %s", submission.id, reason)
        if isinstance(error, CloseValidationError) and STALE_METADATA_FIELDS.intersection(
            error.field_errors
        ):
            await self._refresh_catalog()  # so a form put back offers Close's statuses as they are
        # Tell first, then mark: a crash in between tells twice rather than never.
        await sink.failed(submission, reason, error)
        if not await self.store.mark_failed(
            submission, error=reason, response=response, now=self._clock()
        ):
            raise LostClaim(submission.id)


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
