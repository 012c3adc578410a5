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
from bot.tasks import waiting_remote

# What is remembered is one view's of Close (the key's, or one person's: a restricted rep sees
# fewer leads), so it is kept by (view, term) and never served to another view.
_Key = tuple[str, str]

log = logging.getLogger(__name__)

FRESH_SECONDS = 60.0
# The typeahead serves a remembered answer this old without asking Close again, so the
# keystrokes of a term people keep typing are answered at once and cost Close one search per
# this many seconds. Older, Close is asked (and waited for, within the budget): a list up to a
# minute old could miss a lead a teammate just created, and the user would create it twice.
REFRESH_SECONDS = 10.0
# Slack shows nothing when the options ack misses its 3 s. This leaves room for a busy event
# loop (the ack waited up to 2.4 s under load with a 2 s budget); a late answer is remembered.
BUDGET_SECONDS = 1.5


@dataclass(frozen=True)
class _Answer:
    leads: list[Lead]
    at: float  # clock() when Close gave it
    limit: int  # what was asked for: fewer leads than this is every match

    def covers(self, limit: int) -> bool:
        """Whether it answers a search for up to `limit` leads as Close would."""
        return self.limit >= limit or len(self.leads) < self.limit


class LeadSearch:
    """`search(text)` (the typeahead) answers within `budget` seconds: a remembered answer
    under `refresh_seconds` old at once, else Close's, else the best remembered one.

    `lookup(text)` (the preselection) asks Close with one request per term in flight, and
    raises when Close fails or is late; `fresh(text)` is Close's answer for exactly that
    term if it is under `fresh_seconds` old.

    Each takes `close`: the client of whoever is asking (`CloseClients.for_person`); without
    it, the key's. Answers are remembered per client view.
    """

    def __init__(
        self,
        close: CloseClient,
        *,
        budget: float = BUDGET_SECONDS,
        cache_size: int = 512,
        fresh_seconds: float = FRESH_SECONDS,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._close = close
        self._budget = budget
        self._cache: OrderedDict[_Key, _Answer] = OrderedDict()
        self._cache_size = cache_size
        self._fresh_seconds = fresh_seconds
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        # By (term, limit): the typeahead asks for 99, the preselection for 20.
        self._in_flight: dict[tuple[_Key, int], asyncio.Future[list[Lead]]] = {}

    async def search(
        self,
        text: str,
        *,
        limit: int = 99,
        close: CloseClient | None = None,
        spent: float = 0.0,
    ) -> list[Lead]:
        """The typeahead's answer: one remembered under `refresh_seconds` at once, else
        Close's within `budget` (less the `spent` seconds the caller already took), else the
        best remembered one. Keystrokes typing the same term at the same moment share one
        request.
        """
        close = close or self._close
        key = _key(close, text)
        if not key[1]:
            return []
        answer = self._cache.get(key)
        if (
            answer is not None
            and answer.covers(limit)
            and self._clock() - answer.at <= self._refresh_seconds
        ):
            return answer.leads
        try:
            with waiting_remote():  # perhaps another keystroke's request to Close
                return await asyncio.wait_for(
                    asyncio.shield(self._ask(close, key, text, limit)),
                    timeout=max(self._budget - spent, 0.05),
                )
        except TimeoutError:
            # It goes on in the background, so the next keystroke finds it remembered.
            return self._cached(key)
        except Exception as error:
            log.info("Lead search failed: %s", type(error).__name__)
            return self._cached(key)

    def fresh(self, text: str, *, close: CloseClient | None = None) -> list[Lead] | None:
        """Close's remembered answer for exactly `text` (case-folded), if still fresh."""
        answer = self._cache.get(_key(close or self._close, text))
        if answer is None or self._clock() - answer.at > self._fresh_seconds:
            return None
        return answer.leads

    async def lookup(
        self,
        text: str,
        *,
        limit: int = 20,
        timeout: float,  # noqa: ASYNC109
        close: CloseClient | None = None,
    ) -> list[Lead]:
        """Close's answer within `timeout`, remembered; raises (TimeoutError, CloseError…) otherwise.

        Commands naming the same lead at the same moment share one request.
        """
        close = close or self._close
        key = _key(close, text)
        if not key[1]:
            return []
        pending = self._ask(close, key, text, limit)
        # Shielded: a late caller gives up, the request goes on and its answer is remembered.
        with waiting_remote():
            return await asyncio.wait_for(asyncio.shield(pending), timeout=timeout)

    def _ask(
        self, close: CloseClient, key: _Key, text: str, limit: int
    ) -> asyncio.Future[list[Lead]]:
        """Close's search for `key`, shared with whoever asks the same meanwhile; its answer
        is remembered when it lands, whoever still waits for it."""
        pending = self._in_flight.get((key, limit))
        if pending is None:
            pending = asyncio.ensure_future(close.search_leads(text.strip(), limit=limit))
            self._in_flight[(key, limit)] = pending
            pending.add_done_callback(lambda done: self._settle(key, limit, done))
        return pending

    def _settle(self, key: _Key, limit: int, done: asyncio.Future[list[Lead]]) -> None:
        if self._in_flight.get((key, limit)) is done:
            del self._in_flight[(key, limit)]
        if not done.cancelled() and done.exception() is None:
            self._remember(key, done.result(), limit)

    def _remember(self, key: _Key, leads: list[Lead], limit: int) -> None:
        self._cache[key] = _Answer(leads, self._clock(), limit)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _cached(self, key: _Key) -> list[Lead]:
        """The answer for the longest cached prefix of `key`, narrowed to names containing it
        (within the same view)."""
        view, term = key
        for end in range(len(term), 0, -1):
            answer = self._cache.get((view, term[:end]))
            if answer is not None:
                return [lead for lead in answer.leads if term in lead.label.casefold()]
        return []


def _key(close: CloseClient, text: str) -> _Key:
    return close.view, text.strip().casefold()
