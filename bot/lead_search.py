"""Lead lookups within Slack's 3 s: Close search with a time budget, and a cache to fall back on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from bot.close.client import CloseClient
from bot.close.models import Lead

log = logging.getLogger(__name__)

FRESH_SECONDS = 60.0


@dataclass(frozen=True)
class _Answer:
    leads: list[Lead]
    at: float  # clock() when Close gave it


class LeadSearch:
    """`search(text)` answers within `budget` seconds: Close's answer, or what is cached.

    `lookup(text)` (the preselection) asks Close with one request per term in flight, and
    raises when Close fails or is late; `fresh(text)` is Close's answer for exactly that
    term if it is under `fresh_seconds` old.
    """

    def __init__(
        self,
        close: CloseClient,
        *,
        budget: float = 2.0,
        cache_size: int = 512,
        fresh_seconds: float = FRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._close = close
        self._budget = budget
        self._cache: OrderedDict[str, _Answer] = OrderedDict()
        self._cache_size = cache_size
        self._fresh_seconds = fresh_seconds
        self._clock = clock
        self._in_flight: dict[str, asyncio.Future[list[Lead]]] = {}

    async def search(self, text: str, *, limit: int = 99) -> list[Lead]:
        key = _key(text)
        if not key:
            return []
        lookup = asyncio.ensure_future(self._close.search_leads(text.strip(), limit=limit))
        try:
            leads = await asyncio.wait_for(asyncio.shield(lookup), timeout=self._budget)
        except TimeoutError:
            # Let it finish in the background so the next keystroke finds it cached.
            lookup.add_done_callback(lambda done: self._remember_done(key, done))
            return self._cached(key)
        except Exception as error:
            log.info("Lead search failed: %s", type(error).__name__)
            return self._cached(key)
        self._remember(key, leads)
        return leads

    def fresh(self, text: str) -> list[Lead] | None:
        """Close's remembered answer for exactly `text` (case-folded), if still fresh."""
        answer = self._cache.get(_key(text))
        if answer is None or self._clock() - answer.at > self._fresh_seconds:
            return None
        return answer.leads

    async def lookup(self, text: str, *, limit: int = 20, timeout: float) -> list[Lead]:  # noqa: ASYNC109
        """Close's answer within `timeout`, remembered; raises (TimeoutError, CloseError…) otherwise.

        Commands naming the same lead at the same moment share one request.
        """
        key = _key(text)
        if not key:
            return []
        pending = self._in_flight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._close.search_leads(text.strip(), limit=limit))
            self._in_flight[key] = pending
            pending.add_done_callback(lambda done: self._settle(key, done))
        # Shielded: a late caller gives up, the request goes on and its answer is remembered.
        return await asyncio.wait_for(asyncio.shield(pending), timeout=timeout)

    def _settle(self, key: str, done: asyncio.Future[list[Lead]]) -> None:
        if self._in_flight.get(key) is done:
            del self._in_flight[key]
        self._remember_done(key, done)

    def _remember_done(self, key: str, done: asyncio.Future[list[Lead]]) -> None:
        if not done.cancelled() and done.exception() is None:
            self._remember(key, done.result())

    def _remember(self, key: str, leads: list[Lead]) -> None:
        self._cache[key] = _Answer(leads, self._clock())
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _cached(self, key: str) -> list[Lead]:
        """The answer for the longest cached prefix of `key`, narrowed to names containing it."""
        for end in range(len(key), 0, -1):
            answer = self._cache.get(key[:end])
            if answer is not None:
                return [lead for lead in answer.leads if key in lead.label.casefold()]
        return []


def _key(text: str) -> str:
    return text.strip().casefold()
