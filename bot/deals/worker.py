"""The in-process worker: claims due submissions from the store and has them created in Close."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from bot.deals.models import Submission
from bot.deals.service import Deals
from bot.logs import bind
from bot.store.changes import StoredChange
from bot.sync.applier import ChangeApplier

log = logging.getLogger(__name__)


def instance_name() -> str:
    """Names this process in `claimed_by`: host, pid and a random part (pids get reused)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """Polls the store (and wakes at once on `kick()`), working up to `concurrency` at a time.

    The claim in the store is atomic, so several workers (in one process or several
    instances sharing PostgreSQL) never work the same submission concurrently. A claim is a
    lease, renewed while the work goes on: if this process dies, the lease runs out and
    another worker (or this one restarted) takes the submission over.
    """

    def __init__(
        self,
        deals: Deals,
        *,
        poll_seconds: float = 1.0,
        lease: timedelta = timedelta(seconds=120),
        # Not more: at 50 submissions/s with Close at 1 s, 128 measured worse acks (p99 5.9 s
        # vs 0.3 s): the worker's Close calls then crowd the client's pool (httpx: 100
        # connections, 20 kept alive) that the modal's lead searches need too.
        concurrency: int = 64,
        claim_batch: int = 16,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        name: str | None = None,
        changes: ChangeApplier | None = None,
        change_concurrency: int = 8,
        steps: Callable[[str], Awaitable[int]] | None = None,
    ) -> None:
        self.name = name or instance_name()
        self._deals = deals
        # Close -> Slack changes: few Slack calls each; a handful at once keeps Slack's per-channel
        # pace (about one message a second) and leaves the event loop to the acks.
        self._changes = changes
        self._change_concurrency = change_concurrency
        # Workflow steps left unread (a crash) or whose outcome Slack was not told yet: claims
        # and starts them given this worker's name, returns how many (bot/workflow).
        self._steps = steps
        self._changing: set[asyncio.Task[None]] = set()
        self._poll = poll_seconds
        self._lease = lease
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        # Claimed (and started) at most this many at a time, so a backlog is taken up in
        # small bites between the acks rather than as one burst of work on the event loop.
        self._batch = claim_batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        # What each task in flight holds, to hand back if it is cut short at shutdown.
        self._claims: dict[asyncio.Task[None], Submission | StoredChange] = {}
        self._claiming = True
        self._clock = clock
        # Changes are looked for when stored here, when one is done (the next of its deal may
        # be due) and once a poll period otherwise: not on every turn of a loop kept busy by
        # submissions, where each look is one more write transaction.
        self._changes_wanted = True
        self._changes_looked_at = 0.0
        # Workflow steps the worker looks for are the leftovers of a crash or a failed
        # telling (the listener and `Deals` handle the rest as it happens): once a poll period.
        self._steps_looked_at = 0.0
        # Look again at once (the last claim was cut at its batch, more may be due), or when a
        # slot frees (it was cut at the free slots): otherwise a kick or the poll says when.
        # Each look is a write transaction: one per kick, not two, and none per finished task.
        self._look_again = False
        self._slot_wanted = False

    def kick(self) -> None:
        self._wake.set()

    def kick_changes(self) -> None:
        """Close -> Slack changes were stored: look for them now (not only every poll)."""
        self._changes_wanted = True
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._task is not None

    @property
    def in_flight(self) -> int:
        """Submissions and changes being worked right now."""
        return len(self._claims)

    def start(self) -> None:
        if self._task is None:
            self._claiming = True
            self._task = asyncio.create_task(self._loop(), name="submission-worker")

    def stop_claiming(self) -> None:
        """Take no new work (the first thing at shutdown); what is in flight goes on.

        The loop is woken, not cancelled: a claim cut short would still be written by the
        database, leaving rows claimed by nobody until their lease runs out.
        """
        self._claiming = False
        self._wake.set()

    async def stop(self, *, grace: float = 5.0) -> None:
        """Stop claiming, let the work in flight finish for up to `grace` seconds, then cut
        what is left short and hand its claims back, so another worker (another process, or
        this one's next start) takes it at once instead of after the lease.

        Cut short is safe at any point: a submission whose request may have reached Close is
        looked for in Close before it is sent again, and a change resumes at its next step.
        """
        self.stop_claiming()
        if self._task is not None:
            try:
                # Finishes its current claim (if any) and ends; a hung database is not waited for.
                await asyncio.wait_for(asyncio.shield(self._task), max(grace, 0.5))
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        if not self._claims:
            return
        log.info("Worker stopping: %s in flight, waiting up to %.1f s", len(self._claims), grace)
        _, late = await asyncio.wait(set(self._claims), timeout=max(grace, 0.0))
        if not late:
            return
        held = {task: self._claims[task] for task in late if task in self._claims}
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        released = 0
        for claim in held.values():
            try:
                released += await self._release(claim)
            except Exception:  # the lease still frees it, only later
                log.warning("Could not hand back %s", claim.id, exc_info=True)
        log.info("Worker stopped: handed back %s of %s unfinished", released, len(held))

    async def _release(self, claim: Submission | StoredChange) -> bool:
        now = self._clock()
        if isinstance(claim, Submission):
            return await self._deals.store.release(claim, now=now)
        assert self._changes is not None
        return await self._changes.store.retry_at(claim, now, why="handed back at shutdown")

    async def run_once(self) -> int:
        """Claim and start what is due now; returns how many were started."""
        self._look_again = False
        started = await self._start_submissions() + await self._start_changes()
        now = time.monotonic()
        if self._steps is not None and now - self._steps_looked_at >= self._poll:
            self._steps_looked_at = now
            steps = await self._steps(self.name)
            if steps:
                self._steps_looked_at = 0.0  # more may be waiting behind these
                self._look_again = True
            started += steps
        return started

    def _track(self, task: asyncio.Task[None], claim: Submission | StoredChange) -> None:
        self._claims[task] = claim
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._claims.pop(task, None)

    async def _start_submissions(self) -> int:
        free = self._concurrency - len(self._running)
        if not self._claiming:
            return 0
        if free <= 0:
            self._slot_wanted = True
            return 0
        limit = min(free, self._batch)
        claimed = await self._deals.store.claim_due(
            now=self._clock(), lease=self._lease, limit=limit, owner=self.name
        )
        if len(claimed) == limit:  # more may be due: cut at the batch, or at the free slots
            if limit < free:
                self._look_again = True
            else:
                self._slot_wanted = True
        for submission in claimed:
            task = asyncio.create_task(self._work(submission))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            self._track(task, submission)
        return len(claimed)

    async def _start_changes(self) -> int:
        free = self._change_concurrency - len(self._changing)
        if self._changes is None or free <= 0 or not self._claiming:
            return 0
        now = time.monotonic()
        if not self._changes_wanted and now - self._changes_looked_at < self._poll:
            return 0
        self._changes_wanted, self._changes_looked_at = False, now
        claimed = await self._changes.store.claim_due(
            now=self._clock(), lease=self._lease, limit=free, owner=self.name
        )
        if claimed:
            self._changes_wanted = True  # more may be waiting behind these
            self._look_again = True
        for change in claimed:
            task = asyncio.create_task(self._apply(change))
            self._changing.add(task)
            task.add_done_callback(self._changing.discard)
            self._track(task, change)
        return len(claimed)

    async def _apply(self, change: StoredChange) -> None:
        assert self._changes is not None
        # This task's log lines (and its children's) say which change and Close request.
        bind(change_id=change.id, close_request_id=change.event.request_id)
        try:
            # Within the lease: a hung Slack call must not let a second worker tell it too.
            await asyncio.wait_for(self._changes.process(change), self._lease.total_seconds() * 0.8)
        except TimeoutError:
            log.warning("Change %s took too long; it will be taken up again", change.id)
        self.kick_changes()  # the next change of this deal may be due now

    async def _work(self, submission: Submission) -> None:
        bind(
            submission_id=submission.id,
            slack_user=submission.slack_user_id,
            slack_team=submission.team_id,
        )
        async with self._slots:
            await self._renewing(submission)
        if self._slot_wanted:  # the last look left due work for want of a slot
            self._slot_wanted = False
            self._wake.set()

    async def _renewing(self, submission: Submission) -> None:
        """Process `submission`, renewing its lease every third of it until done."""
        work = asyncio.create_task(self._deals.process(submission))
        every = self._lease.total_seconds() / 3
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=every)
                if work.done():
                    break
                try:
                    held = await self._deals.store.renew(
                        submission, now=self._clock(), lease=self._lease
                    )
                except Exception:  # the store hiccupped: the next renewal may do
                    log.warning("Could not renew the claim on %s", submission.id, exc_info=True)
                    continue
                if not held:
                    log.warning("Lost the claim on %s: stopping its work", submission.id)
                    work.cancel()
        finally:
            if not work.done():
                work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work

    async def _loop(self) -> None:
        while self._claiming:
            self._wake.clear()  # before looking, so a kick during the look is not lost
            try:
                await self.run_once()
            except Exception:
                log.exception("Worker could not read the store; retrying")
                self._look_again = False
            if self._look_again:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
