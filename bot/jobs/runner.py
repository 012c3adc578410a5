"""The one worker loop: claims due jobs of every kind registered with it and works them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic

from bot.jobs.queue import DurableQueue, J, Job

log = logging.getLogger(__name__)


def instance_name() -> str:
    """Names this process in `claimed_by`: host, pid and a random part (pids get reused)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, eq=False)
class JobKind(Generic[J]):
    """One kind of job: its queue, its handler and how the runner treats it.

    `work` never raises (a failure is its own retry or give-up, written to the queue).
    `concurrency`: at most this many at a time; `batch`: claimed at most this many a look.
    `renew`: the lease is renewed every third of it while the work goes on (and the work
    cut short if the claim was lost); else the work runs within 0.8 of the lease.
    `every_turn`: looked for on every turn of the loop; else when kicked (`JobRunner.kick`)
    and once a poll period. `again_after_each`: a job done may make another due (the next
    change of the same deal): look again after each. `context`: binds the job's log context.
    """

    name: str
    queue: DurableQueue[J]
    work: Callable[[J], Coroutine[Any, Any, None]]
    concurrency: int
    batch: int | None = None
    renew: bool = False
    every_turn: bool = False
    again_after_each: bool = False
    context: Callable[[J], None] | None = None


@dataclass(eq=False)
class _Kind:
    """A kind as one runner works it: its tasks, and when to look for more."""

    kind: JobKind[Any]
    running: set[asyncio.Task[None]] = field(default_factory=set)
    # Looked for at the next turn (an on-demand kind): at start, when kicked, after a find.
    wanted: bool = True
    looked_at: float = 0.0
    # The last look left due work for want of a slot (an every-turn kind): wake when one frees.
    slot_wanted: bool = False


class JobRunner:
    """Polls the store (and wakes at once on `kick()`), working each kind up to its concurrency.

    The claim in the store is atomic, so several runners (in one process or several
    instances sharing PostgreSQL) never work the same job concurrently. A claim is a lease:
    if this process dies, the lease runs out and another runner (or this one restarted)
    takes the job over.
    """

    def __init__(
        self,
        *,
        poll_seconds: float = 1.0,
        lease: timedelta = timedelta(seconds=120),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        name: str | None = None,
    ) -> None:
        self.name = name or instance_name()
        self._kinds: list[_Kind] = []
        self._by_name: dict[str, _Kind] = {}
        self._poll = poll_seconds
        self._lease = lease
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # What each task in flight holds, to hand back if it is cut short at shutdown.
        self._claims: dict[asyncio.Task[None], tuple[JobKind[Any], Job]] = {}
        self._claiming = True
        self._clock = clock
        # Look again at once (the last claim was cut at its batch, or found work of a kind
        # looked for on demand: more may be due), or when a slot frees (it was cut at the free
        # slots): otherwise a kick or the poll says when. Each look is a write transaction: one
        # per kick, not two, and none per finished task.
        self._look_again = False

    def register(self, kind: JobKind[J]) -> JobKind[J]:
        """Run jobs of `kind` too (looked for in the order registered)."""
        if kind.name in self._by_name:
            raise ValueError(f"a job kind {kind.name!r} is registered already")
        state = _Kind(kind)
        self._kinds.append(state)
        self._by_name[kind.name] = state
        return kind

    def kick(self, kind: str | None = None) -> None:
        """Look now (not only every poll); `kind`: jobs of that kind were stored."""
        if kind is not None:
            self._by_name[kind].wanted = True
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._task is not None

    @property
    def in_flight(self) -> int:
        """Jobs being worked right now."""
        return len(self._claims)

    def start(self) -> None:
        if self._task is None:
            self._claiming = True
            self._task = asyncio.create_task(self._loop(), name="job-runner")

    def stop_claiming(self) -> None:
        """Take no new work (the first thing at shutdown); what is in flight goes on.

        The loop is woken, not cancelled: a claim cut short would still be written by the
        database, leaving rows claimed by nobody until their lease runs out.
        """
        self._claiming = False
        self._wake.set()

    async def stop(self, *, grace: float = 5.0) -> None:
        """Stop claiming, let the work in flight finish for up to `grace` seconds, then cut
        what is left short and hand its claims back, so another runner (another process, or
        this one's next start) takes it at once instead of after the lease.

        Cut short is safe at any point: each kind's work resumes from what it recorded (a
        submission whose request may have reached Close is looked for in Close before it is
        sent again, a change resumes at its next step).
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
        held = [self._claims[task] for task in late if task in self._claims]
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        released = 0
        for kind, job in held:
            try:
                released += await kind.queue.hand_back(job, now=self._clock())
            except Exception:  # the lease still frees it, only later
                log.warning("Could not hand back %s %s", kind.name, job.id, exc_info=True)
        log.info("Worker stopped: handed back %s of %s unfinished", released, len(held))

    async def run_once(self) -> int:
        """Claim and start what is due now; returns how many were started."""
        self._look_again = False
        started = 0
        for state in self._kinds:
            started += await self._look(state)
        return started

    async def _look(self, state: _Kind) -> int:
        kind = state.kind
        free = kind.concurrency - len(state.running)
        if not self._claiming:
            return 0
        if free <= 0:
            if kind.every_turn:
                state.slot_wanted = True
            return 0
        if not kind.every_turn:
            now = time.monotonic()
            if not state.wanted and now - state.looked_at < self._poll:
                return 0
            state.wanted, state.looked_at = False, now
        limit = free if kind.batch is None else min(free, kind.batch)
        claimed = await kind.queue.claim_due(
            now=self._clock(), lease=self._lease, limit=limit, owner=self.name
        )
        if kind.every_turn:
            if len(claimed) == limit:  # more may be due: cut at the batch, or at the free slots
                if limit < free:
                    self._look_again = True
                else:
                    state.slot_wanted = True
        elif claimed:
            state.wanted = True  # more may be waiting behind these
            self._look_again = True
        for job in claimed:
            task = asyncio.create_task(self._run(state, job))
            state.running.add(task)
            task.add_done_callback(state.running.discard)
            self._claims[task] = (kind, job)
            task.add_done_callback(self._forget)
        return len(claimed)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._claims.pop(task, None)

    async def _run(self, state: _Kind, job: Job) -> None:
        kind = state.kind
        if kind.context is not None:
            kind.context(job)  # this task's log lines (and its children's) say which job
        try:
            if kind.renew:
                await self._renewing(kind, job)
            else:
                # Within the lease: a hung call must not let a second runner work it too.
                await asyncio.wait_for(kind.work(job), self._lease.total_seconds() * 0.8)
        except TimeoutError:
            log.warning("%s %s took too long; it will be taken up again", kind.name, job.id)
        except Exception:  # its claim runs out and it is due again
            log.exception("Could not work %s %s; it will be taken up again", kind.name, job.id)
        if kind.again_after_each:
            self.kick(kind.name)
        if state.slot_wanted:  # the last look left due work for want of a slot
            state.slot_wanted = False
            self._wake.set()

    async def _renewing(self, kind: JobKind[Any], job: Job) -> None:
        """Work `job`, renewing its lease every third of it until done."""
        work = asyncio.create_task(kind.work(job))
        every = self._lease.total_seconds() / 3
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=every)
                if work.done():
                    break
                try:
                    held = await kind.queue.renew(job, now=self._clock(), lease=self._lease)
                except Exception:  # the store hiccupped: the next renewal may do
                    log.warning("Could not renew the claim on %s", job.id, exc_info=True)
                    continue
                if not held:
                    log.warning("Lost the claim on %s: stopping its work", job.id)
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
