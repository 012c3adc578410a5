"""The in-process worker: claims due submissions from the store and has them created in Close."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.deals.models import Submission
from bot.deals.service import Deals

log = logging.getLogger(__name__)


class Worker:
    """Polls the store (and wakes at once on `kick()`), working up to `concurrency` at a time.

    The claim in the store is atomic, so several workers (in one process or several
    instances sharing PostgreSQL) never work the same submission concurrently.
    """

    def __init__(
        self,
        deals: Deals,
        *,
        poll_seconds: float = 1.0,
        lease: timedelta = timedelta(seconds=120),
        concurrency: int = 64,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._deals = deals
        self._poll = poll_seconds
        self._lease = lease
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
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
        if self._running:
            await asyncio.wait(self._running, timeout=5)

    async def run_once(self) -> int:
        """Claim and start what is due now; returns how many were started."""
        free = self._concurrency - len(self._running)
        if free <= 0:
            return 0
        claimed = await self._deals.store.claim_due(
            now=self._clock(), lease=self._lease, limit=free
        )
        for submission in claimed:
            task = asyncio.create_task(self._work(submission))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return len(claimed)

    async def _work(self, submission: Submission) -> None:
        async with self._slots:
            await self._deals.process(submission)
        self._wake.set()  # a slot freed: look for more

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
