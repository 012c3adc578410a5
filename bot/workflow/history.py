"""How `python -m bot history` shows workflow steps: on their submission, or alone when the step
never became one (bad inputs, or not read yet)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.db import session_factory
from bot.workflow.models import StepState, WorkflowStep
from bot.workflow.store import StepStore


class StepHistory:
    """The steps behind the listed submissions, and the steps that are no submission."""

    def __init__(self, of_submissions: dict[str, WorkflowStep], alone: list[WorkflowStep]) -> None:
        self.of_submissions = of_submissions
        self.alone = alone

    @classmethod
    async def load(
        cls, engine: AsyncEngine, submission_ids: list[str], *, user: str | None, limit: int
    ) -> StepHistory:
        store = StepStore(session_factory(engine), dialect=engine.dialect.name)
        alone = [
            step
            for step in await store.without_submission(limit=limit)
            if user is None or step.inputs.get("owner") == user
        ]
        return cls(await store.for_submissions(submission_ids), alone)


def step_line(step: WorkflowStep) -> str:
    """The line a submission made by a workflow step gets: which execution, told Slack what."""
    return f"  via:      workflow step {step.id}: {_told(step)}"


def _told(step: WorkflowStep) -> str:
    if step.state == StepState.COMPLETED:
        return f"completed (functions.completeSuccess at {step.completed_at:%H:%M:%S}Z)"
    if step.state == StepState.FAILED:
        return f"failed (functions.completeError at {step.completed_at:%H:%M:%S}Z)"
    if step.state == StepState.UNTOLD:
        return f"untold (given up at {step.completed_at:%H:%M:%S}Z): {step.error}"
    waiting = f", last problem: {step.error}" if step.error else ""
    return f"{step.state.value}, Slack not told yet{waiting}"


def format_step(step: WorkflowStep) -> str:
    """A step that never became a submission, shown like one."""
    owner = step.inputs.get("owner") or "-"
    head = (
        f"{step.created_at:%Y-%m-%d %H:%M:%S}Z  {step.state.value:<8}  {owner}  "
        f"workflow step {step.id}  attempts={step.attempts}"
    )
    inputs = json.dumps(step.inputs, ensure_ascii=False, separators=(",", ":"), default=str)
    lines = [head, "  inputs:   " + (inputs if len(inputs) <= 400 else inputs[:399] + "…")]
    lines.append("  via:      " + _told(step))
    if step.error and step.state != StepState.UNTOLD:  # `_told` says it already
        lines.append(f"  error:    {step.error}")
    return "\n".join(lines)


def step_record(step: WorkflowStep | None) -> dict[str, Any] | None:
    """A step as `history --json` shows it (never its token)."""
    if step is None:
        return None
    return step.model_dump(mode="json", exclude={"bot_access_token"})


def created_at(step: WorkflowStep) -> datetime:
    return step.created_at
