"""Telling a change of a deal in its confirmation, whoever made it (Edit/Won/Lost in Slack, or Close).

One sequence of steps — the summary and the details updated in place, one reply in the thread
and under the deals-channel announcement, the deals channel's cheer for a win — run by a step
runner the caller picks: `IMMEDIATELY` (the app's own change, told as it is made) or Close ->
Slack's, which records each step and comes back after a rate limit (bot/sync/applier.py).
A confirmation in a channel that may not read Close data (EXTERNAL_CHANNELS) is left as it is
there: the change is told in the creator's DM instead.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from bot.blocks import messages
from bot.blocks.messages import Message
from bot.blocks.opportunity_entity import summary_card
from bot.close.models import Opportunity
from bot.deals.announce import Announcer
from bot.deals.confirmation import Confirmation, Part
from bot.deals.models import ReplyTarget
from bot.deals.notify import Notifier
from bot.slack.errors import Gone, SlackError
from bot.slack.gateway import SlackGateway

log = logging.getLogger(__name__)

# The names are recorded in a Close change's progress (a step done is not done again after a
# restart): renaming one would tell it twice.
Step = Literal["reply", "summary", "details", "announce", "won"]
Act = Callable[[], Awaitable[object]]


class StepRunner(Protocol):
    """How the steps of a telling run: in which `order`, and what a Slack refusal does."""

    order: tuple[Step, ...]

    async def run(self, step: Step, act: Act, *, touches: Part | None = None) -> None:
        """Run `act`, the step `step` (which touches that part of the confirmation, if any)."""
        ...


class Immediately:
    """The app's own change, told as it is made: a step Slack refuses is logged and the next
    one runs. Since nothing stops the telling, the summary and details are refreshed first: the
    reply lands on messages that already show it (what the person who made it then sees)."""

    order: tuple[Step, ...] = ("summary", "details", "reply", "announce", "won")

    async def run(self, step: Step, act: Act, *, touches: Part | None = None) -> None:
        try:
            await act()
        except SlackError as error:
            log.warning("Telling a change: %s skipped, %s", step, error)


IMMEDIATELY = Immediately()


class WonClaims(Protocol):
    """Who cheers a won deal: the first to claim it (kept with the opportunities as Slack
    shows them, bot/sync), across processes; given back when the cheer could not be posted."""

    async def claim_won_announcement(self, opportunity_id: str, *, now: datetime) -> bool: ...

    async def release_won_announcement(self, opportunity_id: str, *, now: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class ChangeTold:
    """A change to tell: the opportunity as it is now, and what is said about it.

    `reply`: the line told in the thread and under the announcement ("X changed it: …"; None:
    nothing worth a reply). `cheer`: the deals channel's message when this change won the
    deal (posted once per deal, whichever process or surface claims it first). `deleted_by`:
    deleted in Close, by whom (mrkdwn): the summary is struck through, the buttons go.
    `answer`: who made the change in Slack, told another way (response_url, DM) when the
    thread refuses the reply. `against_shown`: the reply was worked out against what Slack
    shows (Close -> Slack keeps it), so without a reply or a cheer the summary already shows
    this; otherwise (the app's own change, compared with Close before its write) the summary
    is refreshed whatever.
    """

    opportunity: Opportunity
    creator: str
    reply: Message | None
    cheer: Message | None = None
    deleted_by: str | None = None
    answer: ReplyTarget | None = None
    against_shown: bool = False


@dataclass(frozen=True, slots=True)
class _Planned:
    act: Act
    touches: Part | None


class ChangeTeller:
    """The one way a change is told in a deal's confirmation (see the module's docstring)."""

    def __init__(
        self,
        *,
        slack: SlackGateway,
        announcer: Announcer | None,
        claims: WonClaims,
        close_app_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        cards: bool = False,
    ) -> None:
        self._slack = slack
        # WORK_OBJECTS=on: the refreshed summary's card (its metadata) shows the change too.
        self._cards = cards
        self._notifier = Notifier(slack)
        self._deals_channel = announcer.channel if announcer is not None else None
        self._claims = claims
        self._close_app_url = close_app_url
        self._clock = clock

    async def tell(self, confirmation: Confirmation, told: ChangeTold, steps: StepRunner) -> None:
        planned = self._plan(confirmation, told, await self._withheld(confirmation))
        for step in steps.order:
            if step in planned:
                await steps.run(step, planned[step].act, touches=planned[step].touches)

    async def cheer(self, opportunity: Opportunity, message: Message) -> None:
        """The deals channel's cheer for a won deal: once per deal, across processes. Raises
        what Slack answers; the claim is given back first, so trying again cheers."""
        channel = self._deals_channel
        if channel is None:
            return
        if not await self._claims.claim_won_announcement(opportunity.id, now=self._clock()):
            return  # cheered already (by another change of it, or another process)
        try:
            await self._slack.post_message(channel, message)
        except Exception:
            await self._claims.release_won_announcement(opportunity.id, now=self._clock())
            raise

    async def _withheld(self, confirmation: Confirmation) -> frozenset[str]:
        """The confirmation's channels whose readers may not see Close data (EXTERNAL_CHANNELS:
        shared with another organization since it was logged, or logged under `allow` before
        `private`): their summary and details are left as they are, the change is told in the
        creator's DM. A channel Slack will not describe counts as one (nothing leaks on a doubt),
        but not one that is gone for the app: its steps find that out and forget it, as ever."""
        channels = {part.channel for part in (confirmation.summary, confirmation.thread) if part}
        withheld: set[str] = set()
        for channel in channels:
            try:
                if not await self._slack.may_show_close_data(channel):
                    withheld.add(channel)
            except Gone:
                continue
            except SlackError as error:
                log.info("Who reads %s is unknown (%s): telling by DM", channel, error.code)
                withheld.add(channel)
        return frozenset(withheld)

    def _plan(
        self, confirmation: Confirmation, told: ChangeTold, withheld: frozenset[str]
    ) -> dict[Step, _Planned]:
        planned: dict[Step, _Planned] = {}
        opportunity, reply, thread = told.opportunity, told.reply, confirmation.thread
        summary, details = confirmation.summary, confirmation.details
        if summary is not None and summary.channel in withheld:
            summary = None
        if details is not None and details.channel in withheld:
            details = None
        if summary is not None and (
            not told.against_shown or reply is not None or told.cheer is not None
        ):
            shown = (
                messages.deleted_summary(opportunity, creator=told.creator, by=told.deleted_by)
                if told.deleted_by is not None
                else messages.summary(opportunity, creator=told.creator)
            )
            card = (
                summary_card(opportunity, close_app_url=self._close_app_url)
                if self._cards and told.deleted_by is None
                else None
            )
            planned["summary"] = _Planned(
                self._update(summary.channel, summary.ts, shown, metadata=card), "summary"
            )
        if details is not None:
            fields = messages.details(
                opportunity,
                close_app_url=self._close_app_url,
                ref=confirmation.ref,
                deleted=told.deleted_by is not None,
            )
            planned["details"] = _Planned(
                self._update(details.channel, details.ts, fields), "details"
            )
        if reply is not None and thread is not None and thread.channel in withheld:
            told_there = messages.elsewhere(opportunity, reply, logged_in=thread.channel)
            planned["reply"] = _Planned(self._in_dm(told, told_there), None)
        elif reply is not None and (thread is not None or told.answer is not None):
            planned["reply"] = _Planned(self._reply(confirmation, told, reply), "thread")
        announcement = confirmation.announcement
        if reply is not None and announcement is not None and announcement != thread:
            act = self._post(announcement.channel, reply, announcement.ts)
            planned["announce"] = _Planned(act, "announcement")
        cheer = told.cheer
        if cheer is not None:
            planned["won"] = _Planned(lambda: self.cheer(opportunity, cheer), None)
        return planned

    def _reply(self, confirmation: Confirmation, told: ChangeTold, reply: Message) -> Act:
        thread, answer = confirmation.thread, told.answer
        if answer is None:
            assert thread is not None
            return self._post(thread.channel, reply, thread.ts)
        # Whoever made it in Slack learns it was saved, even where the thread refuses the app.
        target = ReplyTarget(
            user_id=answer.user_id,
            channel_id=thread.channel if thread else None,
            response_url=answer.response_url,
        )
        return lambda: self._notifier.post(target, reply, thread_ts=thread.ts if thread else None)

    def _in_dm(self, told: ChangeTold, message: Message) -> Act:
        """Told in the creator's DM (a new message naming the deal); whoever else made it in
        Slack learns it was saved privately (the response_url, else their DM)."""

        async def act() -> None:
            channel = await self._slack.open_dm(told.creator)
            await self._slack.post_message(channel, message)
            answer = told.answer
            if answer is not None and answer.user_id != told.creator:
                target = ReplyTarget(user_id=answer.user_id, response_url=answer.response_url)
                await self._notifier.post(target, message)

        return act

    def _post(self, channel: str, message: Message, thread_ts: str | None) -> Act:
        return lambda: self._slack.post_message(channel, message, thread_ts=thread_ts)

    def _update(
        self, channel: str, ts: str, message: Message, *, metadata: dict[str, Any] | None = None
    ) -> Act:
        return lambda: self._slack.update_message(channel, ts, message, metadata=metadata)
