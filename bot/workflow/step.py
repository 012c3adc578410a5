"""The use case of the Workflow Builder step: stored step -> read inputs -> a submission -> completion.

The step is stored before its event is acked (`receive`), read right after the ack (or by the
worker, for a step left unread by a crash), and then is a submission like any other: created in
Close by the worker, with its retries and reconciliation. When that submission ends, Slack is
told with the execution's own token (`functions.completeSuccess` / `completeError`): by
`StepCompleter` (bot/workflow/completion.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.close.catalog import Catalog
from bot.close.client import CloseClient
from bot.close.errors import CloseAccessBroken, CloseError, CloseNotConnected, CloseNotFound
from bot.connections import CloseClients
from bot.deals.models import DealRequest, LeadChoice, ReplyTarget
from bot.deals.preferences import LastUsed, Preferences
from bot.deals.prefill import default_status
from bot.deals.refusals import cannot_act
from bot.deals.service import Deals, RetryPolicy, duration
from bot.identity import Identity
from bot.jobs import instance_name
from bot.leads.match import match_lead, search_term
from bot.leads.search import LeadSearch
from bot.slack.gateway import SlackGateway
from bot.tasks import spawn
from bot.workflow.completion import StepCompleter, error_code
from bot.workflow.inputs import InputProblem, StepInputs, is_lead_id, read_deal
from bot.workflow.models import StepState, WorkflowStep
from bot.workflow.store import StepStore

log = logging.getLogger(__name__)

CATALOG_WAIT_SECONDS = 5.0
LEAD_LOOKUP_SECONDS = 10.0


class NotYet(Exception):
    """The inputs cannot be read right now (Close, Slack or the catalog not answering)."""


class WorkflowSteps:
    """Receives and reads workflow steps; `completion` tells Slack how each ended (the same
    `StepCompleter` that `Deals` completes a step's submission with)."""

    def __init__(
        self,
        *,
        store: StepStore,
        deals: Deals,
        completion: StepCompleter,
        catalog: Catalog,
        identity: Identity,
        close: CloseClient,
        lead_search: LeadSearch,
        preferences: Preferences,
        slack: SlackGateway,
        default_pipeline: str | None = None,
        retry: RetryPolicy | None = None,
        lease: timedelta = timedelta(seconds=30),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        name: str | None = None,
        kick: Callable[[], None] = lambda: None,
        clients: CloseClients | None = None,
    ) -> None:
        self.store = store
        self._deals = deals
        self._completion = completion
        self._catalog = catalog
        self._identity = identity
        self._close = close
        # Whose Close the step reads the lead with (CLOSE_ACCESS): None, the key's always.
        self._clients = clients
        self._lead_search = lead_search
        self._preferences = preferences
        self._slack = slack
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
            log.error("Could not fail unstored step %s: %s", execution_id, error_code(error))

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
                await self._completion.tell_outcome(step)
        except Exception:
            log.exception("Could not work workflow step %s; it will be taken up again", step.id)

    async def _read(self, step: WorkflowStep) -> None:
        try:
            read = await self._request(step)
        except (CloseNotConnected, CloseAccessBroken) as error:
            await self._cannot_act(step, error)
            return
        except (NotYet, CloseError, TimeoutError) as error:
            await self._not_yet(step, error)
            return
        if isinstance(read, InputProblem):
            log.info("Workflow step %s has a bad input: %s", step.id, read.describe())
            await self._completion.complete(step, error=read.describe())
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
        lead = await self._lead(deal.lead, await self._close_for(step, owner))
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

    async def _close_for(self, step: WorkflowStep, owner: str) -> CloseClient:
        """The Close client of the person the step acts for: the owner it names (the step's
        submission is theirs, created by the worker with their access too). Raises
        CloseNotConnected / CloseAccessBroken."""
        if self._clients is None:  # (under CLOSE_ACCESS=key, for_person answers with no lookup)
            return self._close
        return await self._clients.for_person(step.team_id, owner)

    async def _cannot_act(
        self, step: WorkflowStep, error: CloseNotConnected | CloseAccessBroken
    ) -> None:
        """The person has no usable Close access (CLOSE_ACCESS=personal, or a broken
        connection). The step fails at once, saying what to do: unlike a submission, which
        waits for them, a workflow run cannot be held for a connect that may come hours later
        (past WORKFLOW_STEP_GIVE_UP_SECONDS it would fail anyway, having told no one), and its
        inputs stay in the workflow's run to run it again."""
        profile = await self._identity.profile(error.slack_user_id)
        who = profile.label if profile else error.slack_user_id
        broken = isinstance(error, CloseAccessBroken)
        if broken and self._clients is not None:
            await self._clients.tell_broken(step.team_id, error.slack_user_id)  # one DM
        message = cannot_act(who, broken=broken)
        log.info("Workflow step %s: %s cannot act in Close yet", step.id, error.slack_user_id)
        await self._completion.complete(step, error=message)

    async def _lead(self, given: str, close: CloseClient) -> tuple[LeadChoice, str] | InputProblem:
        """A lead id that Close has, else the lead the name matches like the one-tap
        preselection does, else a new lead by that name."""
        name = " ".join(given.split())
        if is_lead_id(name):
            try:
                lead = await close.get_lead(name)
            except CloseNotFound:
                return InputProblem(
                    input="lead",
                    message=f"Close has no lead {name}: give the id of an existing lead "
                    "(lead_…) or a lead's name.",
                )
            return LeadChoice(id=lead.id), lead.label
        # Well within the claim's lease: a slow Close is a retry, not a second reader.
        budget = min(LEAD_LOOKUP_SECONDS, self._lease.total_seconds() / 2)
        candidates = await self._lead_search.lookup(
            search_term(name), limit=20, timeout=budget, close=close
        )
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
            await self._completion.complete(
                step,
                error=f"Close did not answer for {duration(bound)} while the step was read "
                f"(last error: {reason}). Nothing was created: run the workflow again once "
                "Close is back.",
            )
            return
        at = now + timedelta(seconds=min(self._retry.delay(step.attempts), left))
        await self.store.retry_at(step, at=at, error=reason, now=now)
        log.info("Workflow step %s will be read again at %s: %s", step.id, at, reason)


def _describe(error: Exception) -> str:
    if isinstance(error, TimeoutError):
        return "Close did not answer in time"
    return str(error) or type(error).__name__
