"""A tap on a nudge's line (Won, Lost, +1 week, a picked date), in the DM or on App Home: the
change made in Close as the person who tapped, through the confirmation's own use case, then the
DM line says what was done."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Literal

from bot.blocks.format import format_date
from bot.blocks.nudges import NudgePayload, nudge_message
from bot.blocks.text import escape
from bot.close.models import Opportunity
from bot.deals.changes import Change, Changes
from bot.deals.models import ReplyTarget
from bot.nudges.planner import NUDGE
from bot.schedule.store import PAYLOAD_RETRIES, ScheduledSend, ScheduledSends
from bot.slack.errors import SlackError
from bot.slack.gateway import SlackGateway

log = logging.getLogger(__name__)

Tap = Literal["won", "lost", "week", "date"]
GONE = "I cannot find this deal in your reminder any more."


def _moved(to: Callable[[Opportunity], date]) -> Change:
    def body(before: Opportunity) -> tuple[dict[str, Any], str]:
        new = to(before)
        return {"date_won": new.isoformat()}, f"moved the expected close date to {format_date(new)}"

    return body


def change_for(tap: Tap, picked: date | None, today: date) -> Change | None:
    """What a tap does to the opportunity; None for a date tap without a date."""
    if tap in ("won", "lost"):
        return tap
    if tap == "week":
        return _moved(lambda before: (before.date_won or today) + timedelta(days=7))
    if picked is None:
        return None
    return _moved(lambda _before: picked)


def done_text(tap: Tap, after: Opportunity) -> str:
    """What the DM line says once done."""
    if tap in ("won", "lost"):
        return f"marked *{escape(after.status_label or tap.title())}*"
    when = format_date(after.date_won) if after.date_won else "none"
    return f"expected close moved to {when}"


class NudgeTaps:
    """What the nudge's buttons and date picker do."""

    def __init__(
        self,
        *,
        sends: ScheduledSends,
        changes: Changes,
        slack: SlackGateway,
        close_app_url: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._sends = sends
        self._changes = changes
        self._slack = slack
        self._close_app_url = close_app_url
        self._clock = clock

    async def tap(
        self, answer: ReplyTarget, send_id: str, opportunity_id: str, tap: Tap, picked: date | None
    ) -> None:
        send = await self._sends.get(send_id)
        if send is None or send.kind != NUDGE or send.payload is None:
            await self._changes.tell(answer, GONE)
            return
        if answer.user_id != send.recipient:
            await self._changes.tell(
                answer, f"This reminder is <@{send.recipient}>'s: only they can act on it here."
            )
            return
        payload = NudgePayload.model_validate(send.payload)
        line = payload.line(opportunity_id)
        change = change_for(tap, picked, payload.period)
        if line is None or change is None:
            await self._changes.tell(answer, GONE)
            return
        if line.done is not None:
            await self._changes.tell(answer, f"Done already: {line.done}.")
            return
        after = await self._changes.change_opportunity(answer, opportunity_id, change)
        if after is not None:
            await self._mark_done(send, opportunity_id, done_text(tap, after))

    async def tap_from_home(
        self, answer: ReplyTarget, opportunity_id: str, tap: Tap, picked: date | None, today: date
    ) -> Opportunity | None:
        """A tap on a line App Home lists (no DM behind it): the same change, as the person who
        tapped; their Home is republished by the caller. None when nothing was changed."""
        change = change_for(tap, picked, today)
        if change is None:
            return None
        return await self._changes.change_opportunity(answer, opportunity_id, change)

    async def _mark_done(self, send: ScheduledSend, opportunity_id: str, done: str) -> None:
        """The line says what was done: in the stored payload (a compare-and-set on its
        revision, so two taps on two lines both stay), then in the DM."""
        current: ScheduledSend | None = send
        for _ in range(PAYLOAD_RETRIES):
            if current is None or current.payload is None:
                return
            payload = NudgePayload.model_validate(current.payload).with_done(opportunity_id, done)
            if await self._sends.write_payload(
                current, payload.model_dump(mode="json"), now=self._clock()
            ):
                break
            current = await self._sends.get(send.id)
        else:
            log.warning("Nudge %s: the line of %s was not recorded", send.id, opportunity_id)
            return
        if current.message_channel is None or current.message_ts is None:
            return
        message = nudge_message(current.id, payload, close_app_url=self._close_app_url)
        try:
            await self._slack.update_message(current.message_channel, current.message_ts, message)
        except SlackError as error:
            log.info("Nudge %s not updated: %s", send.id, error.code)
