"""The in-process worker: claims due submissions from the store and has them created in Close."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.deals.models import Submission
from bot.deals.service import Deals
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
    ) -> None:
        self.name = name or instance_name()
        self._deals = deals
        # Close -> Slack changes: few Slack calls each; a handful at once keeps Slack's per-channel
        # pace (about one message a second) and leaves the event loop to the acks.
        self._changes = changes
        self._change_concurrency = change_concurrency
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
        self._clock = clock

    def kick(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="submission-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._running or self._changing:
            await asyncio.wait(self._running | self._changing, timeout=5)

    async def run_once(self) -> int:
        """Claim and start what is due now; returns how many were started."""
        return await self._start_submissions() + await self._start_changes()

    async def _start_submissions(self) -> int:
        free = self._concurrency - len(self._running)
        if free <= 0:
            return 0
        claimed = await self._deals.store.claim_due(
            now=self._clock(), lease=self._lease, limit=min(free, self._batch), owner=self.name
        )
        for submission in claimed:
            task = asyncio.create_task(self._work(submission))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return len(claimed)

    async def _start_changes(self) -> int:
        free = self._change_concurrency - len(self._changing)
        if self._changes is None or free <= 0:
            return 0
        claimed = await self._changes.store.claim_due(
            now=self._clock(), lease=self._lease, limit=free, owner=self.name
        )
        for change in claimed:
            task = asyncio.create_task(self._apply(change))
            self._changing.add(task)
            task.add_done_callback(self._changing.discard)
        return len(claimed)

    async def _apply(self, change: StoredChange) -> None:
        assert self._changes is not None
        try:
            # Within the lease: a hung Slack call must not let a second worker tell it too.
            await asyncio.wait_for(self._changes.process(change), self._lease.total_seconds() * 0.8)
        except TimeoutError:
            log.warning("Change %s took too long; it will be taken up again", change.id)
        self._wake.set()

    async def _work(self, submission: Submission) -> None:
        async with self._slots:
            await self._renewing(submission)
        self._wake.set()  # a slot freed: look for more

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
        while True:
            self._wake.clear()  # before looking, so a kick during the look is not lost
            try:
                started = await self.run_once()
            except Exception:
                log.exception("Worker could not read the store; retrying")
                started = 0
            if started:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
