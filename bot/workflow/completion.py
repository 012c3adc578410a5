"""Completing the Workflow Builder step behind a submission: `completeSuccess` with the
step's outputs, or `completeError` with what went wrong, told once (and again by the worker
when Slack could not be told). The `StepCompletion` of a step's submission
(bot/deals/outcomes.py, `StepSink`): built before `Deals`, it needs only the stores and Slack."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bot.blocks.messages import lead_url
from bot.close.catalog import Catalog
from bot.close.errors import CloseHTTPError
from bot.close.models import Opportunity
from bot.deals.models import Submission, SubmissionState
from bot.deals.refusals import FIELD_NAMES
from bot.deals.service import RetryPolicy
from bot.deals.store import SubmissionStore
from bot.logs import redact
from bot.slack.errors import Gone, SlackError, TokenRejected
from bot.slack.gateway import SlackGateway
from bot.times import STEP_TOKEN_LIFE
from bot.workflow.inputs import INPUT_TITLES
from bot.workflow.models import FINAL_STATES, StepState, WorkflowStep
from bot.workflow.store import StepStore

log = logging.getLogger(__name__)

# Workflow Builder shows the error to the workflow's people: long enough to act on, no longer.
ERROR_LIMIT = 1000
# Telling Slack the outcome is retried (Slack down, rate limited) while the step's token lives:
# after that no completion can succeed.
TELL_GIVE_UP = STEP_TOKEN_LIFE
# The `error` a step counts under when telling Slack was given up at the token's end.
GAVE_UP = "gave_up"
# Close's field-errors keys -> the step input that sets the field: the modal's mapping, with
# the two inputs named otherwise (the contact comes only from the text).
_BLOCK_INPUTS = {"date_won": "close_date", "contact": "text"}
CLOSE_FIELD_INPUTS = {
    field: _BLOCK_INPUTS.get(block, block) for field, block in FIELD_NAMES.items()
}


class StepCompleter:
    """Tells Slack how a workflow step ended; `succeeded`/`failed` are the `StepCompletion`
    `Deals` calls where a step's submission ends, `tell_outcome` the worker's way."""

    def __init__(
        self,
        *,
        store: StepStore,
        submissions: SubmissionStore,
        slack: SlackGateway,
        catalog: Catalog,
        close_app_url: str,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_untold: Callable[[str], None] = lambda _why: None,
    ) -> None:
        self.store = store
        self._submissions = submissions
        self._slack = slack
        self._catalog = catalog
        self._close_app_url = close_app_url
        self._retry = retry or RetryPolicy()
        self._clock = clock
        # Told of each step Slack can never be told about, with why (metrics count them).
        self._on_untold = on_untold

    # --- the outcome: Deals calls these where a submission ends ---------------------------

    # Neither raises: a step not told here (the store or Slack failing) stays open, and the
    # worker tells it once the submission is over (`tell_outcome`).

    async def succeeded(self, submission: Submission, opportunity: Opportunity) -> None:
        try:
            step = await self._step_of(submission)
            if step is not None:
                await self.complete(step, outputs=self.outputs(submission, opportunity))
        except Exception:
            log.exception("Could not complete the workflow step of submission %s", submission.id)

    async def failed(self, submission: Submission, reason: str, error: Exception | None) -> None:
        try:
            step = await self._step_of(submission)
            if step is None:
                return
            refused = isinstance(error, CloseHTTPError)
            fields = error.field_errors if isinstance(error, CloseHTTPError) else {}
            await self.complete(step, error=self.failure(reason, refused=refused, fields=fields))
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

    async def tell_outcome(self, step: WorkflowStep) -> None:
        """The worker's way: the submission is over and Slack was not told (a crash, Slack down)."""
        submission = await self._submissions.get(step.submission_id or "")
        if submission is None:
            await self.complete(step, error="The app lost track of this step: run it again.")
            return
        if submission.state == SubmissionState.CREATED and submission.response:
            opportunity = Opportunity.model_validate(submission.response)
            await self.complete(step, outputs=self.outputs(submission, opportunity))
            return
        response = submission.response or {}
        fields = response.get("field-errors")
        await self.complete(
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

    async def complete(
        self,
        step: WorkflowStep,
        *,
        outputs: dict[str, str] | None = None,
        error: str | None = None,
    ) -> None:
        """completeSuccess (outputs) or completeError (error), then mark the step done. Told
        twice counts as told; Slack not answering leaves it to the worker, later. Never raises."""
        execution_id = step.function_execution_id
        if step.state in FINAL_STATES:
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
            # Final: the execution's token will not come back to life (it expired), and it is
            # the only one functions.complete* take. Recorded, counted, never retried.
            why = f"Slack refused the step's token ({rejected.code})"
            await self._untold(step, rejected.code, why, outputs=outputs, error=message)
            return
        except SlackError as refused:
            if refused.code == "parameter_validation_failed" and outputs is not None:
                log.error("Slack refused the outputs of step %s: %s", execution_id, outputs)
                await self.complete(
                    step,
                    error=f"The opportunity {outputs.get('opportunity_id')} is in Close "
                    f"({outputs.get('opportunity_url')}), but Slack refused this step's outputs.",
                )
                return
            await self._tell_later(step, refused.code, outputs=outputs, error=message)
            return
        except (aiohttp.ClientError, TimeoutError) as unreachable:
            await self._tell_later(step, error_code(unreachable), outputs=outputs, error=message)
            return
        state = StepState.COMPLETED if outputs is not None else StepState.FAILED
        await self.store.finish(execution_id, state=state, error=message or None, now=self._clock())

    async def _untold(
        self,
        step: WorkflowStep,
        code: str,
        why: str,
        *,
        outputs: dict[str, str] | None,
        error: str,
    ) -> None:
        """Slack cannot be told any more: the step's row says why and what it would have been
        told; `code` (Slack's error, or `gave_up`) is counted."""
        if outputs is not None:
            would = f"the opportunity {outputs.get('opportunity_id')} was created in Close"
        else:
            would = f"the step failed: {error}"
        log.error("Workflow step %s was never told: %s; %s", step.id, why, would)
        if await self.store.finish(
            step.function_execution_id,
            state=StepState.UNTOLD,
            error=f"{why}: the workflow was not told that {would}",
            now=self._clock(),
        ):
            self._on_untold(code)

    async def _tell_later(
        self, step: WorkflowStep, code: str, *, outputs: dict[str, str] | None, error: str
    ) -> None:
        now = self._clock()
        if now - step.created_at > TELL_GIVE_UP:
            why = f"Slack did not take the completion while the step's token lived (last: {code})"
            await self._untold(step, GAVE_UP, why, outputs=outputs, error=error)
            return
        at = now + timedelta(seconds=self._retry.delay(max(step.attempts, 1)))
        log.warning(
            "Could not tell Slack about workflow step %s (%s); again at %s", step.id, code, at
        )
        await self.store.defer(
            step.function_execution_id, at=at, error=f"telling Slack failed: {code}", now=now
        )


def error_code(error: Exception) -> str:
    if isinstance(error, SlackError):
        return error.code
    return type(error).__name__
