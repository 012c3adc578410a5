"""Lead typeahead within Slack's 3 s: Close search with a time budget, and a cache to fall back on."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from bot.close.client import CloseClient
from bot.close.models import Lead

log = logging.getLogger(__name__)


class LeadSearch:
    """`search(text)` answers within `budget` seconds: Close's answer, or what is cached."""

    def __init__(self, close: CloseClient, *, budget: float = 2.0, cache_size: int = 512) -> None:
        self._close = close
        self._budget = budget
        self._cache: OrderedDict[str, list[Lead]] = OrderedDict()
        self._cache_size = cache_size

    async def search(self, text: str, *, limit: int = 99) -> list[Lead]:
        key = text.strip().casefold()
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

    def _remember_done(self, key: str, done: asyncio.Future[list[Lead]]) -> None:
        if not done.cancelled() and done.exception() is None:
            self._remember(key, done.result())

    def _remember(self, key: str, leads: list[Lead]) -> None:
        self._cache[key] = leads
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _cached(self, key: str) -> list[Lead]:
        """The answer for the longest cached prefix of `key`, narrowed to names containing it."""
        for end in range(len(key), 0, -1):
            leads = self._cache.get(key[:end])
            if leads is not None:
                return [lead for lead in leads if key in lead.label.casefold()]
        return []
