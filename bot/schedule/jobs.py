"""Scheduled sends as the job runner works them: one kind of job for every kind of send."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from bot.jobs import JobKind
from bot.schedule.store import ScheduledSend, ScheduledSends

log = logging.getLogger(__name__)

CONCURRENCY = 8
Sender = Callable[[ScheduledSend], Coroutine[Any, Any, None]]


def scheduled_send_jobs(
    sends: ScheduledSends, senders: Mapping[str, Sender], *, concurrency: int = CONCURRENCY
) -> JobKind[ScheduledSend]:
    """Each claimed send goes to the sender of its kind (`nudge`; later `digest`, `alert`)."""

    async def work(send: ScheduledSend) -> None:
        sender = senders.get(send.kind)
        if sender is None:  # a kind a newer version planned: its lease frees it for one that knows
            log.warning("No sender for scheduled %s %s", send.kind, send.id)
            return
        await sender(send)

    return JobKind("scheduled send", queue=sends, work=work, concurrency=concurrency, renew=True)
