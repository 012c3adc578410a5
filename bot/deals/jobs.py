"""Deals to create, as the job runner works them (bot/jobs): the submissions' queue."""

from __future__ import annotations

from bot.deals.models import Submission
from bot.deals.service import Deals
from bot.jobs import JobKind
from bot.logs import bind

# Not more: at 50 submissions/s with Close at 1 s, 128 measured worse acks (p99 5.9 s vs
# 0.3 s): the runner's Close calls then crowd the client's pool (httpx: 100 connections, 20
# kept alive) that the modal's lead searches need too.
CONCURRENCY = 64
# Claimed (and started) at most this many at a time, so a backlog is taken up in small bites
# between the acks rather than as one burst of work on the event loop.
CLAIM_BATCH = 16


def submission_jobs(
    deals: Deals, *, concurrency: int = CONCURRENCY, claim_batch: int = CLAIM_BATCH
) -> JobKind[Submission]:
    """Looked for on every turn of the runner (a user waits on each); the lease renewed while
    Close works it, since a create must not be cut short by a timeout of ours."""
    return JobKind(
        "submission",
        queue=deals.store,
        work=deals.process,
        concurrency=concurrency,
        batch=claim_batch,
        renew=True,
        every_turn=True,
        context=_context,
    )


def _context(submission: Submission) -> None:
    bind(
        submission_id=submission.id,
        slack_user=submission.slack_user_id,
        slack_team=submission.team_id,
    )
