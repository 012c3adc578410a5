"""The optional deals channel (DEALS_CHANNEL): one message per new opportunity, its updates threaded."""

from __future__ import annotations

import logging

from bot.blocks.messages import Message, lead_url, summary, value_line
from bot.blocks.text import MESSAGE_TEXT, SECTION_TEXT, fit, fit_mrkdwn
from bot.close.models import Opportunity
from bot.deals.notify import Posted
from bot.slack.errors import SlackError
from bot.slack.gateway import SlackGateway

log = logging.getLogger(__name__)


def announcement(
    opportunity: Opportunity, *, creator: str, close_app_url: str, logged_in: str | None
) -> Message:
    """The deals-channel post: the confirmation's summary line, where it was logged, a link."""
    line = summary(opportunity, creator=creator).blocks[0]["text"]["text"]
    where = f" in <#{logged_in}>" if logged_in and logged_in.startswith(("C", "G")) else ""
    url = lead_url(close_app_url, opportunity.lead_id)
    lead = opportunity.lead_name or opportunity.lead_id
    return _post(
        "announcement",
        line,
        f"Logged{where} · <{url}|Open in Close>",
        text=f"New opportunity for {lead}",
    )


def _post(block_id: str, line: str, context: str, *, text: str) -> Message:
    """A deals-channel post: one line, and a context line under it."""
    return Message(
        text=fit_mrkdwn(text, MESSAGE_TEXT),
        blocks=[
            {
                "type": "section",
                "block_id": block_id,
                "text": {"type": "mrkdwn", "text": fit(line, SECTION_TEXT)},
            },
            {
                "type": "context",
                "block_id": f"{block_id}_context",
                "elements": [{"type": "mrkdwn", "text": fit(context, 2000)}],
            },
        ],
    )


def won_announcement(
    opportunity: Opportunity, *, by: str, close_app_url: str, where: str = "in Close"
) -> Message:
    """The deals channel's cheer for a won deal; `by` is escaped mrkdwn, `where` it was marked."""
    lead = fit_mrkdwn(opportunity.lead_name or opportunity.lead_id, 200)
    parts = [
        value_line(opportunity),
        f"owner {fit_mrkdwn(opportunity.user_name, 100)}" if opportunity.user_name else None,
    ]
    line = " ".join([f":tada: *{lead}* is won!", " · ".join(p for p in parts if p)]).strip()
    url = lead_url(close_app_url, opportunity.lead_id)
    return _post(
        "won",
        line,
        f"Marked won {where} by {fit(by, 300)} · <{url}|Open in Close>",
        text=f"Won: {opportunity.lead_name or opportunity.lead_id}",
    )


class Announcer:
    """Posts to the deals channel; does nothing when none is configured."""

    def __init__(self, slack: SlackGateway, channel: str | None, *, close_app_url: str) -> None:
        self._slack = slack
        self.channel = channel or None
        self._close_app_url = close_app_url

    async def created(
        self, opportunity: Opportunity, *, creator: str, logged_in: str | None
    ) -> Posted | None:
        """Announce a new opportunity, unless it was logged in the deals channel itself
        (its confirmation is already there: a second message would only repeat it)."""
        if self.channel is None or logged_in == self.channel:
            return None
        message = announcement(
            opportunity, creator=creator, close_app_url=self._close_app_url, logged_in=logged_in
        )
        return await self._post(message, thread_ts=None)

    async def post(self, message: Message) -> Posted | None:
        """A message of its own in the deals channel (None: none configured, or Slack refused)."""
        return await self._post(message, thread_ts=None)

    async def changed(
        self, message: Message, *, channel: str | None, ts: str | None, already_in: str | None
    ) -> None:
        """Thread `message` under the announcement (skipped when it was posted there already)."""
        if not channel or not ts or (already_in is not None and already_in == f"{channel}:{ts}"):
            return
        await self._post(message, thread_ts=ts, channel=channel)

    async def _post(
        self, message: Message, *, thread_ts: str | None, channel: str | None = None
    ) -> Posted | None:
        where = channel or self.channel
        if where is None:
            return None
        try:
            posted = await self._slack.post_message(where, message, thread_ts=thread_ts)
        except SlackError as error:
            # The deals channel is a bonus: the user's own confirmation does not depend on it.
            log.warning("Deals channel post to %s failed: %s", where, error.code)
            return None
        return Posted(via="channel", channel=posted.channel, ts=posted.ts)
