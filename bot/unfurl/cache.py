"""Small in-memory helpers for previews: answers kept a short while and shared while in flight,
and "seen this already" for Slack's redeliveries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedCache(Generic[K, V]):
    """`get(key, fetch)`: a value fetched less than `ttl` seconds ago, else one fetch per key at
    a time however many ask at once (they all wait on it). A failed fetch is not kept: the
    callers waiting on it get its error, the next caller fetches again.

    Bounded to `max_entries` (expired entries go first, then the oldest).
    """

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._values: dict[K, tuple[float, V]] = {}
        self._inflight: dict[K, asyncio.Future[V]] = {}

    def fresh(self, key: K) -> tuple[bool, V | None]:
        """(True, value) when `key` has a value younger than `ttl`, else (False, None)."""
        hit = self._values.get(key)
        if hit is not None and hit[0] > self._clock():
            return True, hit[1]
        return False, None

    async def get(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        found, value = self.fresh(key)
        if found:
            return value  # type: ignore[return-value]  # V itself may be Optional
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fill(key, fetch))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._settled(key, done))
        # Shielded: one caller giving up (its own timeout) must not cancel the others' fetch.
        return await asyncio.shield(task)

    async def _fill(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        value = await fetch()
        self._store(key, value)
        return value

    def _settled(self, key: K, done: asyncio.Future[V]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        if not done.cancelled():
            done.exception()  # retrieved: a fetch everyone gave up on must not warn at exit

    def _store(self, key: K, value: V) -> None:
        now = self._clock()
        self._values.pop(key, None)  # re-inserted last: dict order is age order
        self._values[key] = (now + self.ttl, value)
        if len(self._values) > self.max_entries:
            for stale in [k for k, (expires, _) in self._values.items() if expires <= now]:
                del self._values[stale]
            while len(self._values) > self.max_entries:
                del self._values[next(iter(self._values))]


class SeenRecently(Generic[K]):
    """`first(key)`: True the first time `key` is offered within `ttl` seconds, else False."""

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._seen: dict[K, float] = {}

    def first(self, key: K) -> bool:
        now = self._clock()
        expires = self._seen.get(key)
        if expires is not None and expires > now:
            return False
        self._seen.pop(key, None)
        self._seen[key] = now + self.ttl
        if len(self._seen) > self.max_entries:
            for stale in [k for k, until in self._seen.items() if until <= now]:
                del self._seen[stale]
            while len(self._seen) > self.max_entries:
                del self._seen[next(iter(self._seen))]
        return True
