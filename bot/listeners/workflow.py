"""The Workflow Builder step "Create a Close opportunity": stored, then acked, then read."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext

from bot.listeners.fallback import mark_started
from bot.listeners.payload import str_at
from bot.services import Services
from bot.workflow.models import CALLBACK_ID, StepState

log = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    workflow = services.workflow
    if workflow is None:
        return

    # Acked by hand, after the insert: a crash before it means Slack delivers the event again
    # (the Events API retries), never a step lost. A redelivery finds the row: a no-op.
    @app.function(CALLBACK_ID, auto_acknowledge=False)
    async def create_opportunity_step(
        ack: AsyncAck, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        mark_started(context, "create_opportunity_step")
        if not isinstance(event.get("function_execution_id"), str):
            await ack()
            return
        try:
            step, is_new = await workflow.receive(event, team_id=str_at(body, "team_id"))
        except Exception:
            # Our 200 would stop Slack's retries: fail the step so the workflow does not hang.
            log.exception("Could not store workflow step %s", event["function_execution_id"])
            await ack()
            await workflow.refuse_unstored(event)
            return
        await ack()
        if not is_new:
            log.info("Workflow step %s delivered again (%s)", step.id, step.state.value)
        if step.state == StepState.RECEIVED:
            workflow.start(step)  # a claim: if it is being read already, this does nothing
