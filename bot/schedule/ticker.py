"""A small periodic task: a planner's tick every so often, for as long as the process runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Ticker:
    """Runs `tick` at start and then every `every` seconds; a failed tick is logged and the
    next one goes on (the work it plans is stored, so nothing is lost in between)."""

    def __init__(self, tick: Callable[[], Awaitable[object]], *, every: float, name: str) -> None:
        # One look now (the loop's, or anyone's who needs it at once).
        self.tick = tick
        self._every = every
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self._name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("%s: this look failed; the next one goes on", self._name)
            await asyncio.sleep(self._every)
