"""A scheduled send's one message: posted at most once, put off when Slack says so, skipped
with a reason otherwise. Every kind of scheduled send (nudges, digests, alerts) posts through
this, so "never twice" is written once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from bot.blocks.messages import Message
from bot.jobs import Backoff
from bot.schedule.store import ScheduledSend, ScheduledSends
from bot.slack.errors import Gone, NotAllowed, NotForThisAudience, RateLimited, SlackError
from bot.slack.gateway import SlackGateway

log = logging.getLogger(__name__)


class Posting:
    """Posts, skips and puts off claimed sends of one kind (`what`, for the logs)."""

    def __init__(
        self,
        *,
        sends: ScheduledSends,
        slack: SlackGateway,
        backoff: Backoff,
        clock: Callable[[], datetime],
        what: str,
    ) -> None:
        self._sends = sends
        self._slack = slack
        self._backoff = backoff
        self._clock = clock
        self._what = what

    async def post(
        self, job: ScheduledSend, channel: str, message: Message, payload: dict[str, Any]
    ) -> None:
        """Post `message` to `channel` (a user id: their DM with the app) and record it with
        `payload`. A post whose outcome is unknown (the process died, or Slack stopped
        answering mid-request) is not made again: a send missed beats a send twice. Where
        the channel's readers may not see Close data, it is skipped (the gateway decides)."""
        if job.posting_at is not None:
            log.warning(
                "%s %s may have been posted by a holder that died: not again", self._what, job.id
            )
            await self.skip(job, "its post's outcome is unknown")
            return
        if not await self._sends.posting(job, now=self._clock()):
            return  # another worker took it over
        try:
            posted = await self._slack.post_message(channel, message)
        except NotForThisAudience:
            await self.skip(job, "its channel is shared with another organization")
            return
        except (Gone, NotAllowed) as error:
            await self.skip(job, f"Slack: {error.code}")
            return
        except SlackError as error:  # Slack answered: nothing was posted
            wait = error.retry_after if isinstance(error, RateLimited) else None
            await self.retry(job, f"Slack: {error.code}", wait)
            return
        except aiohttp.ClientConnectorError:  # never reached Slack: nothing was posted
            await self.retry(job, "Slack: unreachable", None)
            return
        stored = await self._sends.sent(
            job, channel=posted.channel, ts=posted.ts, payload=payload, now=self._clock()
        )
        if not stored:
            log.warning("%s %s was posted but its claim was lost meanwhile", self._what, job.id)

    async def skip(self, job: ScheduledSend, why: str) -> None:
        await self._sends.skipped(job, why=why, now=self._clock())

    async def retry(self, job: ScheduledSend, error: str, wait: float | None) -> None:
        now = self._clock()
        delay = wait if wait is not None else self._backoff.delay(job.attempts)
        log.info("%s %s not sent (%s); again in %.0f s", self._what, job.id, error, delay)
        await self._sends.retry_at(job, at=now + timedelta(seconds=delay), error=error, now=now)
