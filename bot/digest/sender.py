"""Sends a planned digest: last week's figures read from Close, one post in the channel."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from bot.close.client import CloseClient
from bot.close.errors import CloseError
from bot.digest.figures import Week
from bot.digest.message import digest_message
from bot.digest.reads import read_digest
from bot.schedule.posting import Posting
from bot.schedule.store import ScheduledSend
from bot.schedule.timing import local_day

log = logging.getLogger(__name__)


class DigestSender:
    """The digest kind of scheduled send: what one claimed (digest, channel, week) does."""

    def __init__(
        self,
        *,
        posting: Posting,
        close: CloseClient,
        zone: ZoneInfo,
        close_app_url: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._posting = posting
        self._close = close  # the org key: the whole pipeline, read in the background
        self._zone = zone
        self._close_app_url = close_app_url
        self._clock = clock

    async def send(self, job: ScheduledSend) -> None:
        """One post in the channel, during the week after the one it reports (never later)."""
        week = week_of(job.period)
        today = local_day(self._clock(), self._zone)
        if today > week.next.sunday:
            await self._posting.skip(job, "its week is over")
            return
        try:
            digest = await read_digest(self._close, week, today, self._zone)
        except CloseError as error:
            await self._posting.retry(job, f"Close: {type(error).__name__}", None)
            return
        message = digest_message(digest, close_app_url=self._close_app_url)
        payload = {
            "week": job.period,
            "new": digest.new.count,
            "won": digest.won.count,
            "lost": digest.lost.count,
            "open": digest.open_total.count,
            "overdue": digest.overdue,
        }
        await self._posting.post(job, job.recipient, message, payload)


def week_of(period: str) -> Week:
    """The week a digest's period names (`2026-W49`)."""
    year, _, number = period.partition("-W")
    return Week(date.fromisocalendar(int(year), int(number), 1))
