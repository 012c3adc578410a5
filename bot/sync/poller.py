"""Reads Close's event log for opportunity changes: one reader at a time across processes, a
durable cursor, the last five minutes read again each time (Close shows recent events late)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.close.client import CloseClient
from bot.close.errors import CloseError
from bot.sync.events import ACTIONS, OBJECT_TYPE, CloseEvent, parse_close_time
from bot.sync.store import ChangeStore
from bot.tasks import cancel

log = logging.getLogger(__name__)

# Close's advice: recent events may become visible late, or be merged; read them again.
RESCAN = timedelta(minutes=5)
CURSOR_KEY = "event_log_cursor"
LEASE_KEY = "event_log_reader"
# A busy org's five minutes fit in far fewer pages; this only bounds a pathological read.
MAX_PAGES = 100


class EventPoller:
    def __init__(
        self,
        *,
        close: CloseClient,
        store: ChangeStore,
        every_seconds: float,
        holder: str,
        on_new: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._close = close
        self._store = store
        self.every_seconds = every_seconds
        self._holder = holder
        self._on_new = on_new
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        # The lease outlives a few missed rounds, so a dead reader is replaced within a minute.
        self._lease = timedelta(seconds=max(3 * every_seconds, 15.0))
        self.last_read_at: datetime | None = None

    def start(self) -> None:
        if self._task is None and self.every_seconds > 0:
            self._task = asyncio.create_task(self._loop(), name="close-event-poller")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel(self._task)
            self._task = None
            with contextlib.suppress(Exception):
                await self._store.release(LEASE_KEY, self._holder, now=self._clock())

    async def _loop(self) -> None:
        while True:
            try:
                await self.poll_once()
            except CloseError as error:
                # 429s were already waited out by the client; try again next round.
                log.warning("Reading Close's event log failed: %s", error)
            except Exception:
                log.exception("Reading Close's event log failed")
            await asyncio.sleep(self.every_seconds)

    async def poll_once(self) -> int | None:
        """Read what is new; returns how many events were new, None when another process reads."""
        now = self._clock()
        if not await self._store.acquire(LEASE_KEY, self._holder, now=now, ttl=self._lease):
            return None
        cursor = await self._store.get_state(CURSOR_KEY) or {}
        new = 0
        for action in ACTIONS:
            since = parse_close_time(str(cursor.get(action, ""))) or now
            events = await self._read(action, since - RESCAN)
            new += await self._store.add(events, source="poll", now=self._clock())
            newest = max((event.updated_at for event in events), default=since)
            cursor[action] = max(since, newest).isoformat()
        await self._store.put_state(CURSOR_KEY, cursor, now=self._clock())
        self.last_read_at = now
        if new:
            log.info("Event log: %s new change(s)", new)
            self._on_new()
        return new

    async def _read(self, action: str, since: datetime) -> list[CloseEvent]:
        events: list[CloseEvent] = []
        page_cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await self._close.list_events(
                object_type=OBJECT_TYPE, action=action, date_updated_gte=since, cursor=page_cursor
            )
            for item in page.data:
                try:
                    events.append(CloseEvent.model_validate(item))
                except ValueError:
                    log.info("Skipped an unreadable event in Close's log")
            page_cursor = page.cursor_next
            if not page_cursor or not page.data:
                break
        return [event for event in events if event.followed]
