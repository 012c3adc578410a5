"""The use case of the Workflow Builder step: stored step -> read inputs -> a submission -> completion.

The step is stored before its event is acked (`receive`), read right after the ack (or by the
worker, for a step left unread by a crash), and then is a submission like any other: created in
Close by the worker, with its retries and reconciliation. When that submission ends, Slack is
told with the execution's own token (`functions.completeSuccess` / `completeError`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bot.blocks.messages import lead_url
from bot.close.catalog import Catalog
from bot.close.client import CloseClient
from bot.close.errors import CloseError, CloseHTTPError, CloseNotFound
from bot.close.models import Opportunity
from bot.deals.models import DealRequest, LeadChoice, ReplyTarget, Submission, SubmissionState
from bot.deals.preferences import LastUsed, Preferences
from bot.deals.prefill import default_status
from bot.deals.refusals import FIELD_NAMES
from bot.deals.service import Deals, RetryPolicy, duration
from bot.identity import Identity
from bot.jobs import instance_name
from bot.leads.match import match_lead, search_term
from bot.leads.search import LeadSearch
from bot.logs import redact
from bot.slack.errors import Gone, SlackError, TokenRejected
from bot.slack.gateway import SlackGateway
from bot.tasks import spawn
from bot.workflow.inputs import INPUT_TITLES, InputProblem, StepInputs, is_lead_id, read_deal
from bot.workflow.models import StepState, WorkflowStep
from bot.workflow.store import StepStore

log = logging.getLogger(__name__)

CATALOG_WAIT_SECONDS = 5.0
LEAD_LOOKUP_SECONDS = 10.0
# Workflow Builder shows the error to the workflow's people: long enough to act on, no longer.
ERROR_LIMIT = 1000
# Telling Slack the outcome is retried this long (Slack down, rate limited), then given up.
TELL_GIVE_UP = timedelta(days=1)
# Close's field-errors keys -> the step input that sets the field: the modal's mapping, with
# the two inputs named otherwise (the contact comes only from the text).
_BLOCK_INPUTS = {"date_won": "close_date", "contact": "text"}
CLOSE_FIELD_INPUTS = {
    field: _BLOCK_INPUTS.get(block, block) for field, block in FIELD_NAMES.items()
}


class NotYet(Exception):
    """The inputs cannot be read right now (Close, Slack or the catalog not answering)."""


class WorkflowSteps:
    """Receives, reads and completes workflow steps; its `succeeded`/`failed` are the
    `StepCompletion` of a step's submission (bot/deals/outcomes.py, `StepSink`)."""

    def __init__(
        self,
        *,
        store: StepStore,
        deals: Deals,
        catalog: Catalog,
        identity: Identity,
        close: CloseClient,
        lead_search: LeadSearch,
        preferences: Preferences,
        slack: SlackGateway,
        close_app_url: str,
        default_pipeline: str | None = None,
        retry: RetryPolicy | None = None,
        lease: timedelta = timedelta(seconds=30),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        name: str | None = None,
        kick: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self._deals = deals
        self._catalog = catalog
        self._identity = identity
        self._close = close
        self._lead_search = lead_search
        self._preferences = preferences
        self._slack = slack
        self._close_app_url = close_app_url
        self._default_pipeline = default_pipeline
        self._retry = retry or RetryPolicy()
        self._lease = lease
        self._clock = clock
        self.name = name or instance_name()
        # Wakes the job runner once a step is a submission (Services: the runner's kick).
        self.kick = kick

    # --- the listener: store, then (after the ack) read ------------------------------------

    async def receive(
        self, event: Mapping[str, Any], *, team_id: str | None
    ) -> tuple[WorkflowStep, bool]:
        """Store the `function_executed` event; (step, False) for a redelivery."""
        inputs = event.get("inputs")
        return await self.store.receive(
            function_execution_id=str(event["function_execution_id"]),
            inputs=dict(inputs) if isinstance(inputs, Mapping) else {},
            bot_access_token=str(event.get("bot_access_token") or ""),
            team_id=team_id,
            now=self._clock(),
        )

    def start(self, step: WorkflowStep) -> None:
        """Read a just-stored step now, in the background (the worker would, within a poll)."""
        spawn(self._claim_and_work(step.function_execution_id), name="workflow-step")

    async def _claim_and_work(self, function_execution_id: str) -> None:
        step = await self.store.claim(
            function_execution_id, now=self._clock(), lease=self._lease, owner=self.name
        )
        if step is not None:  # else the worker took it first
            try:
                async with asyncio.timeout(self._lease.total_seconds() * 0.8):
                    await self.work(step)
            except TimeoutError:
                log.warning("Workflow step %s took too long; it will be taken up again", step.id)

    async def refuse_unstored(self, event: Mapping[str, Any]) -> None:
        """The step could not be stored (the database failed): fail it rather than leave the
        workflow waiting for ever. Never raises."""
        execution_id = event.get("function_execution_id")
        token = event.get("bot_access_token")
        if not isinstance(execution_id, str) or not isinstance(token, str):
            return
        message = (
            "The app could not record this step (its database did not answer). Nothing was "
            "created in Close: run the workflow again in a minute."
        )
        try:
            await self._slack.fail_step(token, execution_id, message)
        except Exception as error:
            log.error("Could not fail unstored step %s: %s", execution_id, _code(error))

    # --- the job: steps left unread, and outcomes not yet told ------------------------------

    async def work(self, step: WorkflowStep) -> None:
        """Never raises: whatever goes wrong, the claim runs out and the step is due again.

        Within the lease (the job runner's timeout, or `_claim_and_work`'s): past it, another
        worker may take the step over.
        """
        try:
            if step.state == StepState.RECEIVED:
                await self._read(step)
            else:
                await self._tell_outcome(step)
        except Exception:
            log.exception("Could not work workflow step %s; it will be taken up again", step.id)

    async def _read(self, step: WorkflowStep) -> None:
        try:
            read = await self._request(step)
        except (NotYet, CloseError, TimeoutError) as error:
            await self._not_yet(step, error)
            return
        if isinstance(read, InputProblem):
            log.info("Workflow step %s has a bad input: %s", step.id, read.describe())
            await self._complete(step, error=read.describe())
            return
        request, reply_to = read
        submission, is_new = await self._deals.accept(
            idempotency_key=step.idempotency_key,
            request=request,
            reply_to=reply_to,
            slack_user_id=reply_to.user_id,
            team_id=step.team_id,
            received_at=step.created_at,
        )
        if not await self.store.accepted(step, submission_id=submission.id, now=self._clock()):
            # Finished meanwhile (the worker already completed it), or taken over: nothing to do.
            log.info("Workflow step %s moved on while it was read", step.id)
        if is_new:
            log.info("Workflow step %s is submission %s", step.id, submission.id)
        self.kick()

    async def _request(self, step: WorkflowStep) -> tuple[DealRequest, ReplyTarget] | InputProblem:
        """The step's submission, from its inputs read like the modal reads a command."""
        inputs = StepInputs.read(step.inputs)
        if not inputs.owner:
            return InputProblem(input="owner", message="pick the person who owns the deal.")
        if not self._catalog.loaded and not await self._catalog.wait_loaded(CATALOG_WAIT_SECONDS):
            raise NotYet("Close's statuses and users have not loaded yet")
        owner = inputs.owner
        mapping = await self._identity.close_user_for(owner)
        if mapping.close_user is None:
            if mapping.transient:
                raise NotYet(mapping.reason)
            return InputProblem(input="owner", message=mapping.owner_error(is_self=False))
        profile = await self._identity.profile(owner)
        deal = read_deal(
            inputs,
            self._catalog,
            now=self._clock(),
            tz=profile.tz if profile else "UTC",
            locale=profile.locale if profile else "en-US",
            default_status=default_status(
                self._catalog, await self._last_used(owner), self._default_pipeline
            ),
        )
        if isinstance(deal, InputProblem):
            return deal
        lead = await self._lead(deal.lead)
        if isinstance(lead, InputProblem):
            return lead
        choice, lead_name = lead
        status = deal.status
        pipeline = self._catalog.pipeline_for_status(status.id) if status else None
        request = DealRequest(
            lead=choice,
            lead_name=lead_name,
            status_id=status.id if status else None,
            pipeline_id=pipeline.id if pipeline else (status.pipeline_id if status else None),
            value=deal.value,
            value_period=deal.value_period,
            confidence=deal.confidence,
            date_won=deal.date_won,
            user_id=mapping.close_user.id,
            note=deal.note,
            custom=deal.custom,
            tz_offset_hours=profile.tz_offset_hours if profile else None,
            owner_slack_id=owner,
        )
        reply_to = ReplyTarget(
            user_id=owner, channel_id=inputs.channel, workflow_step=step.function_execution_id
        )
        return request, reply_to

    async def _last_used(self, owner: str) -> LastUsed | None:
        try:
            return await self._preferences.last_used(owner)
        except Exception as error:  # the org's default status does without it
            log.info("Last used choices of %s unavailable: %s", owner, type(error).__name__)
            return None

    async def _lead(self, given: str) -> tuple[LeadChoice, str] | InputProblem:
        """A lead id that Close has, else the lead the name matches like the one-tap
        preselection does, else a new lead by that name."""
        name = " ".join(given.split())
        if is_lead_id(name):
            try:
                lead = await self._close.get_lead(name)
            except CloseNotFound:
                return InputProblem(
                    input="lead",
                    message=f"Close has no lead {name}: give the id of an existing lead "
                    "(lead_…) or a lead's name.",
                )
            return LeadChoice(id=lead.id), lead.label
        # Well within the claim's lease: a slow Close is a retry, not a second reader.
        budget = min(LEAD_LOOKUP_SECONDS, self._lease.total_seconds() / 2)
        candidates = await self._lead_search.lookup(search_term(name), limit=20, timeout=budget)
        match = match_lead(name, candidates)
        if match.lead is not None:
            return LeadChoice(id=match.lead.id), match.lead.label
        return LeadChoice(new_name=name), name

    async def _not_yet(self, step: WorkflowStep, error: Exception) -> None:
        """Read it again later with backoff; past the step's bound, fail it clearly."""
        now = self._clock()
        reason = _describe(error)
        bound = self._retry.step_give_up_after_seconds
        left = bound - (now - step.created_at).total_seconds()
        if left <= 0:
            await self._complete(
                step,
                error=f"Close did not answer for {duration(bound)} while the step was read "
                f"(last error: {reason}). Nothing was created: run the workflow again once "
                "Close is back.",
            )
            return
        at = now + timedelta(seconds=min(self._retry.delay(step.attempts), left))
        await self.store.retry_at(step, at=at, error=reason, now=now)
        log.info("Workflow step %s will be read again at %s: %s", step.id, at, reason)

    # --- the outcome: Deals calls these where a submission ends ---------------------------

    # Neither raises: a step not told here (the store or Slack failing) stays open, and the
    # worker tells it once the submission is over (`_tell_outcome`).

    async def succeeded(self, submission: Submission, opportunity: Opportunity) -> None:
        try:
            step = await self._step_of(submission)
            if step is not None:
                await self._complete(step, outputs=self.outputs(submission, opportunity))
        except Exception:
            log.exception("Could not complete the workflow step of submission %s", submission.id)

    async def failed(self, submission: Submission, reason: str, error: Exception | None) -> None:
        try:
            step = await self._step_of(submission)
            if step is None:
                return
            refused = isinstance(error, CloseHTTPError)
            fields = error.field_errors if isinstance(error, CloseHTTPError) else {}
            await self._complete(step, error=self.failure(reason, refused=refused, fields=fields))
        except Exception:
            log.exception("Could not fail the workflow step of submission %s", submission.id)

    async def _step_of(self, submission: Submission) -> WorkflowStep | None:
        execution_id = submission.reply_to.workflow_step
        if execution_id is None:
            return None
        step = await self.store.get(execution_id)
        if step is None:
            log.error(
                "Submission %s names workflow step %s, which is not stored",
                submission.id,
                execution_id,
            )
        return step

    async def _tell_outcome(self, step: WorkflowStep) -> None:
        """The worker's way: the submission is over and Slack was not told (a crash, Slack down)."""
        submission = await self._deals.store.get(step.submission_id or "")
        if submission is None:
            await self._complete(step, error="The app lost track of this step: run it again.")
            return
        if submission.state == SubmissionState.CREATED and submission.response:
            opportunity = Opportunity.model_validate(submission.response)
            await self._complete(step, outputs=self.outputs(submission, opportunity))
            return
        response = submission.response or {}
        fields = response.get("field-errors")
        await self._complete(
            step,
            error=self.failure(
                submission.error or "Close did not take it.",
                refused="status" in response,
                fields=fields if isinstance(fields, dict) else {},
            ),
        )

    def outputs(self, submission: Submission, opportunity: Opportunity) -> dict[str, str]:
        """The step's outputs, as manifests/*.json declare them."""
        return {
            "opportunity_id": opportunity.id,
            "opportunity_url": lead_url(self._close_app_url, opportunity.lead_id),
            "lead_id": opportunity.lead_id,
            "lead_name": opportunity.lead_name or submission.request.lead_name,
        }

    def failure(self, reason: str, *, refused: bool, fields: Mapping[str, Any]) -> str:
        """What the workflow is told when Close did not take the deal: Close's field errors,
        each with the input (or the text) to change."""
        if fields:
            return "Close refused it: " + "; ".join(
                self._field_problem(str(field), str(text)) for field, text in fields.items()
            )
        return f"Close refused it: {reason}" if refused else reason

    def _field_problem(self, field: str, said: str) -> str:
        text = said.strip().rstrip(".")
        if field.startswith("custom."):
            custom = self._catalog.custom_field(field.removeprefix("custom."))
            if custom is not None:
                return (
                    f"{field} ({custom.name}): {text} — add “{custom.name}: …” to the step's "
                    f"“{INPUT_TITLES['text']}”"
                )
            return f"{field}: {text}"
        wrong = CLOSE_FIELD_INPUTS.get(field)
        if wrong is None:
            return f"{field}: {text}"
        return f"{field}: {text} — check the step's “{INPUT_TITLES[wrong]}” input"

    # --- telling Slack -----------------------------------------------------------------------

    async def _complete(
        self,
        step: WorkflowStep,
        *,
        outputs: dict[str, str] | None = None,
        error: str | None = None,
    ) -> None:
        """completeSuccess (outputs) or completeError (error), then mark the step done. Told
        twice counts as told; Slack not answering leaves it to the worker, later. Never raises."""
        execution_id = step.function_execution_id
        if step.state in (StepState.COMPLETED, StepState.FAILED):
            return
        token = step.bot_access_token
        message = redact(error or "")[:ERROR_LIMIT]
        try:
            if outputs is not None:
                await self._slack.complete_step(token, execution_id, outputs)
            else:
                await self._slack.fail_step(token, execution_id, message)
        except Gone as gone:  # the execution ended: told already (or timed out)
            log.info("Workflow step %s was told already (%s)", execution_id, gone.code)
        except TokenRejected as rejected:
            log.error("Cannot tell Slack about workflow step %s: %s", execution_id, rejected.code)
        except SlackError as refused:
            if refused.code == "parameter_validation_failed" and outputs is not None:
                log.error("Slack refused the outputs of step %s: %s", execution_id, outputs)
                await self._complete(
                    step,
                    error=f"The opportunity {outputs.get('opportunity_id')} is in Close "
                    f"({outputs.get('opportunity_url')}), but Slack refused this step's outputs.",
                )
                return
            await self._tell_later(step, refused.code)
            return
        except (aiohttp.ClientError, TimeoutError) as unreachable:
            await self._tell_later(step, _code(unreachable))
            return
        state = StepState.COMPLETED if outputs is not None else StepState.FAILED
        await self.store.finish(execution_id, state=state, error=message or None, now=self._clock())

    async def _tell_later(self, step: WorkflowStep, code: str) -> None:
        now = self._clock()
        if now - step.created_at > TELL_GIVE_UP:
            log.error("Gave up telling Slack about workflow step %s: %s", step.id, code)
            await self.store.finish(
                step.function_execution_id,
                state=StepState.FAILED,
                error=f"Slack could not be told ({code})",
                now=now,
            )
            return
        at = now + timedelta(seconds=self._retry.delay(max(step.attempts, 1)))
        log.warning(
            "Could not tell Slack about workflow step %s (%s); again at %s", step.id, code, at
        )
        await self.store.defer(
            step.function_execution_id, at=at, error=f"telling Slack failed: {code}", now=now
        )


def _code(error: Exception) -> str:
    if isinstance(error, SlackError):
        return error.code
    return type(error).__name__


def _describe(error: Exception) -> str:
    if isinstance(error, TimeoutError):
        return "Close did not answer in time"
    return str(error) or type(error).__name__
