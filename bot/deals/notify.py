"""Telling the user the outcome in Slack, whatever the channel allows: thread, response_url or DM."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.blocks.messages import Message
from bot.deals.models import ReplyTarget
from bot.slack.errors import Gone, NotAllowed, SlackError
from bot.slack.gateway import Place, SlackGateway

log = logging.getLogger(__name__)


class Posted(BaseModel):
    """Where a message landed; `channel`/`ts` are None when it went through a response_url."""

    via: str
    channel: str | None = None
    ts: str | None = None

    @property
    def threadable(self) -> bool:
        return self.channel is not None and self.ts is not None


class Notifier:
    def __init__(self, slack: SlackGateway) -> None:
        self._slack = slack

    async def post(
        self,
        target: ReplyTarget,
        message: Message,
        *,
        thread_ts: str | None = None,
        fallback: bool = True,
        close_data: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> Posted | None:
        """Post `message` where the user asked; fall back (the response_url, a DM) so the user
        always learns the outcome. `fallback` False: the target's channel or nowhere.
        `close_data` False: the message carries none (see SlackGateway.post_message).
        `metadata`: its Work Object cards, where it is posted as a message (a response_url
        takes none)."""
        thread_ts = thread_ts or target.thread_ts
        if target.channel_id:
            posted = await self._post_in(
                target.channel_id,
                message,
                thread_ts=thread_ts,
                close_data=close_data,
                metadata=metadata,
            )
            if posted:
                return posted
        if not fallback:
            return None
        if target.response_url:
            try:
                response = await AsyncWebhookClient(target.response_url).send(
                    text=message.text, blocks=message.blocks, response_type="ephemeral"
                )
                if response.status_code == 200:
                    return Posted(via="response_url")
                log.info("response_url answered %s", response.status_code)
            except Exception as error:  # network trouble must not hide the outcome: try a DM
                log.info("response_url failed: %s", type(error).__name__)
        return await self._post_dm(target.user_id, message, metadata=metadata)

    async def _post_in(
        self,
        channel: str,
        message: Message,
        *,
        thread_ts: str | None,
        close_data: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> Posted | None:
        try:
            posted = await self._slack.post_message(
                channel, message, thread_ts=thread_ts, close_data=close_data, metadata=metadata
            )
        except (Gone, NotAllowed):
            return None  # not here: the caller tries another way
        except SlackError as error:
            log.warning("chat.postMessage to %s failed: %s", channel, error.code)
            return None
        return Posted(via="channel", channel=posted.channel, ts=posted.ts)

    async def _post_dm(
        self, user_id: str, message: Message, *, metadata: dict[str, Any] | None = None
    ) -> Posted | None:
        channel = await self.dm_channel(user_id)
        if channel is None:
            return None
        posted = await self._post_in(channel, message, thread_ts=None, metadata=metadata)
        return posted.model_copy(update={"via": "dm"}) if posted else None

    async def update_view(self, view_id: str, view: dict[str, Any]) -> bool:
        """Replace an open modal; False when the user has closed it (or Slack refused)."""
        try:
            await self._slack.update_view(view_id, view)
            return True
        except SlackError as error:
            log.info("views.update %s skipped: %s", view_id, error.code)
            return False

    async def dm_channel(self, user_id: str) -> str | None:
        """The app's DM with `user_id` (conversations.open); None when Slack will not open it."""
        try:
            return await self._slack.open_dm(user_id)
        except SlackError as error:
            log.error("Could not open a DM with %s: %s", user_id, error.code)
            return None

    async def place(self, target: ReplyTarget) -> Place:
        """Where the confirmation of a deal logged at `target` lives: its conversation, or the
        person's DM where that conversation's readers may not see Close data."""
        return await self._slack.confirmation_place(
            target.channel_id, target.user_id, thread_ts=target.thread_ts
        )

    async def in_dm(self, target: ReplyTarget) -> ReplyTarget:
        """`target` moved to the person's DM (no thread there); the response_url stays the
        fallback, since what it shows only the person sees."""
        return ReplyTarget(
            user_id=target.user_id,
            channel_id=await self.dm_channel(target.user_id),
            response_url=target.response_url,
        )

    async def note(
        self, channel: str, user_id: str, text: str, *, thread_ts: str | None = None
    ) -> None:
        """An ephemeral note for `user_id` in `channel` (best effort: logged when refused)."""
        try:
            await self._slack.post_ephemeral(channel, user_id, text, thread_ts=thread_ts)
        except SlackError as error:
            log.info("chat.postEphemeral to %s in %s failed: %s", user_id, channel, error.code)

    async def update(
        self,
        channel: str,
        ts: str,
        message: Message,
        *,
        close_data: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        try:
            await self._slack.update_message(
                channel, ts, message, close_data=close_data, metadata=metadata
            )
            return True
        except SlackError as error:
            log.warning("chat.update failed: %s", error.code)
            return False
