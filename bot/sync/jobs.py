"""Close changes to tell in Slack, as the job runner works them (bot/jobs)."""

from __future__ import annotations

from bot.jobs import JobKind
from bot.logs import bind
from bot.sync.applier import ChangeApplier
from bot.sync.store import StoredChange

# Few Slack calls each; a handful at once keeps Slack's per-channel pace (about one message a
# second) and leaves the event loop to the acks.
CONCURRENCY = 8


def change_jobs(applier: ChangeApplier, *, concurrency: int = CONCURRENCY) -> JobKind[StoredChange]:
    """Looked for when stored (`JobRunner.kick("change")`), when one is done (the next of its
    deal may be due) and once a poll period otherwise: not on every turn of a runner kept busy
    by submissions, where each look is one more write transaction. Each runs within the lease:
    a hung Slack call must not let a second worker tell it too."""
    return JobKind(
        "change",
        queue=applier.store,
        work=applier.process,
        concurrency=concurrency,
        again_after_each=True,
        context=_context,
    )


def _context(change: StoredChange) -> None:
    bind(change_id=change.id, close_request_id=change.event.request_id)
