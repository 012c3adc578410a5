"""Workflow steps to complete, as the job runner works them (bot/jobs)."""

from __future__ import annotations

from bot.jobs import JobKind
from bot.workflow.models import WorkflowStep
from bot.workflow.step import WorkflowSteps

CONCURRENCY = 8


def step_jobs(workflow: WorkflowSteps, *, concurrency: int = CONCURRENCY) -> JobKind[WorkflowStep]:
    """The leftovers of a crash or of a failed telling (the listener and `Deals` handle the
    rest as it happens): looked for once a poll period, each run within the lease."""
    return JobKind(
        "workflow step", queue=workflow.store, work=workflow.work, concurrency=concurrency
    )
