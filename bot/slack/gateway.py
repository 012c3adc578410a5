"""The one way the bot talks to Slack's Web API: a typed method per call, Slack's errors typed.

Every call goes through `SlackGateway`, and every error Slack answers comes out as one of
bot.slack.errors' categories. Posting a message anywhere (a channel, a thread, a DM) is one
method, `post_message`: what decides who will read a post belongs there, so no caller can
forget it:
with `close_data` (the default) a post — or an update of one, or a link preview — that would show
Close data to a channel shared with another organization raises NotForThisAudience instead
(EXTERNAL_CHANNELS, bot.slack.audience).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.slack.audience import (
    Audience,
    AudienceStore,
    ChannelAudiences,
    ExternalChannels,
    PreviewScope,
    may_show_close_data,
    preview_scope,
)
from bot.slack.errors import Gone, NotForThisAudience, SlackError, slack_error

if TYPE_CHECKING:
    from bot.blocks.messages import Message

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a posted message is: its conversation and its `ts`."""

    channel: str
    ts: str


@dataclass(frozen=True, slots=True)
class UserAnswer:
    """users.info's `user`, with the answer's headers (`x-oauth-scopes` says what was granted)."""

    user: dict[str, Any]
    headers: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class MembersPage:
    """One page of users.list; `next_cursor` is None on the last."""

    members: list[dict[str, Any]]
    next_cursor: str | None
    headers: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AuthAnswer:
    """auth.test: who the token is, in which workspace, and the answer's headers (scopes)."""

    user: str | None
    team: str | None
    team_id: str | None
    headers: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Place:
    """Where a deal's confirmation (and its thread) lives: `channel` is a channel id, or the
    person's user id for their DM with the app. `moved_from`: the channel it was asked for,
    when other organizations read that one (EXTERNAL_CHANNELS=private): leave the person an
    ephemeral note there saying the confirmation is in their DMs."""

    channel: str
    thread_ts: str | None = None
    moved_from: str | None = None

    @property
    def in_dm(self) -> bool:
        return self.moved_from is not None or self.channel.startswith(("D", "U", "W"))


class SlackGateway:
    """Slack's Web API for the bot, over one slack_sdk client (and its connection pool).

    Methods return what their callers use and raise bot.slack.errors' typed errors for Slack's
    refusals; Slack not answering stays aiohttp.ClientError / TimeoutError (see errors.py).
    """

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        external_channels: ExternalChannels | None = None,
        audience_store: AudienceStore | None = None,
        audience_ttl_seconds: float = 3600.0,
    ) -> None:
        """`external_channels`: EXTERNAL_CHANNELS, enforced by `post_message`; None (a gateway
        that only checks tokens: doctor, start-up) posts wherever Slack lets it."""
        self.client = client
        self._team_name: str | None = None
        self.external_channels = external_channels
        self.audiences = ChannelAudiences(
            self.conversation_info, store=audience_store, ttl_seconds=audience_ttl_seconds
        )

    # --- who reads it -----------------------------------------------------------------------

    async def audience(self, channel_id: str) -> Audience:
        """Who can read `channel_id`: known (no call), else stored, else one conversations.info."""
        return await self.audiences.audience(channel_id)

    async def may_show_close_data(self, channel_id: str) -> bool:
        """May Close data be posted in `channel_id` under EXTERNAL_CHANNELS?"""
        if self.external_channels is None:
            return True
        return may_show_close_data(await self.audience(channel_id), self.external_channels)

    async def preview_scope(self, channel_id: str | None) -> PreviewScope:
        """What a link preview read in `channel_id` may show (None: a link still in the
        composer, no conversation known). A channel Slack will not describe is not known
        either: the lead's name only there (nothing leaks on a doubt)."""
        if self.external_channels in (None, "allow"):
            return preview_scope(None, self.external_channels)  # no need to ask who reads it
        audience: Audience | None = None
        if channel_id is not None:
            try:
                audience = await self.audience(channel_id)
            except SlackError as error:
                log.info("Who reads %s is unknown (%s): no Close data", channel_id, error.code)
        return preview_scope(audience, self.external_channels)

    async def confirmation_place(
        self, channel_id: str | None, user_id: str, *, thread_ts: str | None = None
    ) -> Place:
        """Where the confirmation of a deal `user_id` logged from `channel_id` (and thread)
        goes: there, unless Close data may not be shown there, then the person's DM. A channel
        Slack will not describe counts as one that may not (nothing leaks on a doubt) — but one
        that is not there for the app (a private channel it is not in) stays: nothing can be
        posted there, so the caller falls back as for any channel that refuses the app (the
        response_url, then a DM), and post_message keeps Close data out whatever happens."""
        if channel_id is None:
            return Place(channel=user_id)
        try:
            allowed = await self.may_show_close_data(channel_id)
        except Gone:
            return Place(channel=channel_id, thread_ts=thread_ts)
        except SlackError as error:
            log.info("Who reads %s is unknown (%s): confirming by DM", channel_id, error.code)
            allowed = False
        if allowed:
            return Place(channel=channel_id, thread_ts=thread_ts)
        return Place(channel=user_id, moved_from=channel_id)

    async def conversation_info(self, channel_id: str) -> dict[str, Any]:
        """conversations.info's `channel` (is_ext_shared, is_pending_ext_shared, is_im, …)."""
        answer = await _answer(
            "conversations.info", self.client.conversations_info(channel=channel_id)
        )
        channel: dict[str, Any] = answer["channel"]
        return channel

    # --- messages ---------------------------------------------------------------------------

    async def post_message(
        self,
        channel: str,
        message: Message,
        *,
        thread_ts: str | None = None,
        close_data: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> MessageRef:
        """Post `message` to a channel, a thread (`thread_ts`) or a DM (its channel id).

        The one method that posts a message: every channel post, thread reply and DM of the
        bot comes through here. A message is taken to carry Close data unless the caller says
        `close_data=False`; one that does is refused (NotForThisAudience, nothing posted)
        where EXTERNAL_CHANNELS keeps Close data out. A DM never costs a call; a channel
        costs one conversations.info the first time (then memory, shared through the
        database).

        `metadata`: Work Object cards attached to the message, `{"entities": [...]}` (Slack
        accepts them on chat.postMessage as on chat.unfurl: python-slack-sdk's
        `chat_postMessage(metadata=EventAndEntityMetadata(entities=...))` and its
        integration_tests/web/test_message_metadata.py). A card is read by everyone in the
        conversation and always counts as Close data, whatever `close_data` says.
        """
        if (close_data or metadata is not None) and not await self.may_show_close_data(channel):
            raise NotForThisAudience("chat.postMessage", channel)
        response = await _answer(
            "chat.postMessage",
            self.client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                unfurl_links=False,
                metadata=metadata,
                **message.as_kwargs(),
            ),
        )
        _warned("chat.postMessage", response)
        return MessageRef(channel=response["channel"], ts=response["ts"])

    async def update_message(
        self,
        channel: str,
        ts: str,
        message: Message,
        *,
        close_data: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Replace the message `ts` in `channel` (chat.update).

        Readers of a channel see an update as they see a post: the same rule as `post_message`
        (Close data refused with NotForThisAudience where EXTERNAL_CHANNELS keeps it out), so no
        summary refreshed by Edit/Won/Lost, Close or a worker telling it again can carry Close
        data into a channel shared with another organization. `metadata` (Work Object cards)
        replaces the message's; without it the message keeps what it had.
        """
        if (close_data or metadata is not None) and not await self.may_show_close_data(channel):
            raise NotForThisAudience("chat.update", channel)
        response = await _answer(
            "chat.update",
            self.client.chat_update(
                channel=channel, ts=ts, metadata=metadata, **message.as_kwargs()
            ),
        )
        _warned("chat.update", response)

    async def post_ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> None:
        """A message only `user` sees, in `channel` (or its thread)."""
        await _answer(
            "chat.postEphemeral",
            self.client.chat_postEphemeral(
                channel=channel, user=user, thread_ts=thread_ts, text=text, blocks=blocks
            ),
        )

    async def unfurl(
        self,
        unfurls: dict[str, dict[str, Any]] | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        ts: str | None = None,
        unfurl_id: str | None = None,
        source: str | None = None,
        close_data: bool = True,
    ) -> None:
        """Link previews for a message (`channel` + `ts`) or a link being typed (`unfurl_id`
        + `source`): Block Kit `unfurls` keyed by the URLs exactly as they were shared, and/or
        Work Object cards, `metadata` = `{"entities": [...]}` (each entity's `app_unfurl_url`
        the URL as shared; docs.slack.dev chat.unfurl: "Either unfurls or metadata must be
        provided").

        A preview is read by everyone in the conversation: with `close_data` (the default),
        previews where its readers may not see Close data (`preview_scope`: a channel shared
        with another organization, or a link still in the composer, whose channel is not
        known) are refused (NotForThisAudience, nothing sent); say `close_data=False` for ones
        without it. The same rule for cards as for blocks.
        """
        if close_data and await self.preview_scope(channel) is not PreviewScope.CLOSE_DATA:
            raise NotForThisAudience("chat.unfurl", channel or unfurl_id or "")
        await _answer(
            "chat.unfurl",
            self.client.chat_unfurl(
                unfurls=unfurls,
                metadata=metadata,
                channel=channel,
                ts=ts,
                unfurl_id=unfurl_id,
                source=source,
            ),
        )

    async def present_details(
        self,
        trigger_id: str,
        *,
        metadata: dict[str, Any] | None = None,
        user_auth_url: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        """entity.presentDetails: a Work Object's flexpane for the one person whose
        `entity_details_requested` carried `trigger_id` — the entity as they may see it
        (`metadata`: one entity, no `entities` wrapper), or `user_auth_url` (they must connect
        first: `user_auth_required`), or `error` (`{"status": "restricted" | "not_found" |
        "internal_error" | "timeout" | …}`). Shapes: docs.slack.dev entity.presentDetails,
        python-slack-sdk `entity_presentDetails`."""
        await _answer(
            "entity.presentDetails",
            self.client.entity_presentDetails(
                trigger_id=trigger_id,
                metadata=metadata,
                user_auth_required=True if user_auth_url else None,
                user_auth_url=user_auth_url,
                error=error,
            ),
        )

    async def permalink(self, channel: str, message_ts: str) -> str | None:
        response = await _answer(
            "chat.getPermalink",
            self.client.chat_getPermalink(channel=channel, message_ts=message_ts),
        )
        link = response.get("permalink")
        return link if isinstance(link, str) else None

    async def open_dm(self, user_id: str) -> str:
        """The channel id of the app's DM with `user_id` (conversations.open)."""
        opened = await _answer("conversations.open", self.client.conversations_open(users=user_id))
        channel_id: str = opened["channel"]["id"]
        return channel_id

    # --- views ------------------------------------------------------------------------------

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> dict[str, Any]:
        """Open a modal; the view as Slack has it (its `id`, its `hash`)."""
        opened = await _answer(
            "views.open", self.client.views_open(trigger_id=trigger_id, view=view)
        )
        shown: dict[str, Any] = opened["view"]
        return shown

    async def update_view(
        self, view_id: str, view: dict[str, Any], *, hash: str | None = None
    ) -> dict[str, Any]:
        """Replace an open modal; with `hash`, Slack refuses when the user changed it meanwhile."""
        updated = await _answer(
            "views.update", self.client.views_update(view_id=view_id, hash=hash, view=view)
        )
        shown: dict[str, Any] = updated["view"]
        return shown

    async def publish_view(
        self, user_id: str, view: dict[str, Any], *, view_hash: str | None = None
    ) -> str | None:
        """The user's App Home tab; the published view's hash. With `view_hash`, Slack refuses
        (`hash_conflict`) when the tab changed since the publish that gave it."""
        extra = {"hash": view_hash} if view_hash else {}
        response = await _answer(
            "views.publish", self.client.views_publish(user_id=user_id, view=view, **extra)
        )
        published = response.get("view")
        return str(published.get("hash")) if isinstance(published, dict) else None

    # --- people and tokens ------------------------------------------------------------------

    async def user_info(self, user_id: str) -> UserAnswer:
        response = await _answer(
            "users.info", self.client.users_info(user=user_id, include_locale=True)
        )
        return UserAnswer(user=response["user"], headers=response.headers)

    async def members_page(self, *, limit: int, cursor: str | None = None) -> MembersPage:
        response = await _answer(
            "users.list",
            self.client.users_list(limit=limit, cursor=cursor, include_locale=True),
        )
        cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
        return MembersPage(
            members=list(response.get("members") or []),
            next_cursor=cursor,
            headers=response.headers,
        )

    async def user_id_by_email(self, email: str) -> str | None:
        found = await _answer("users.lookupByEmail", self.client.users_lookupByEmail(email=email))
        user_id = (found.get("user") or {}).get("id")
        return user_id if isinstance(user_id, str) else None

    async def auth_test(self) -> AuthAnswer:
        auth = await _answer("auth.test", self.client.auth_test())
        return AuthAnswer(
            user=auth.get("user"),
            team=auth.get("team"),
            team_id=auth.get("team_id"),
            headers=auth.headers,
        )

    async def warm_up(self) -> AsyncSlackResponse:
        """auth.test once at start, on the pooled session (its connection is the first
        request's): the workspace's name remembered for `team_name`, and the raw answer, which
        Bolt's single-workspace authorization would otherwise ask for on the first request."""
        auth = await _answer("auth.test", self.client.auth_test())
        if self._team_name is None:
            self._team_name = auth.get("team") or ""
        return auth

    async def team_name(self) -> str | None:
        """The installing workspace's name (auth.test, asked once per process)."""
        if self._team_name is None:
            try:
                self._team_name = (await self.auth_test()).team or ""
            except SlackError:
                self._team_name = ""  # asked once: the refusals just say "this workspace's"
                raise
        return self._team_name or None

    async def open_socket_connection(self, app_token: str) -> None:
        """apps.connections.open with the app-level token (the URL it hands out is unused)."""
        await _answer(
            "apps.connections.open", self.client.apps_connections_open(app_token=app_token)
        )

    # --- workflow steps ---------------------------------------------------------------------

    async def complete_step(
        self, token: str, function_execution_id: str, outputs: dict[str, str]
    ) -> None:
        """functions.completeSuccess, with the execution's own token."""
        await _answer(
            "functions.completeSuccess",
            self._with_token(token).functions_completeSuccess(
                function_execution_id=function_execution_id, outputs=outputs
            ),
        )

    async def fail_step(self, token: str, function_execution_id: str, error: str) -> None:
        """functions.completeError, with the execution's own token: `error` is what the
        workflow's builder sees."""
        await _answer(
            "functions.completeError",
            self._with_token(token).functions_completeError(
                function_execution_id=function_execution_id, error=error
            ),
        )

    def _with_token(self, token: str) -> AsyncWebClient:
        """A client holding `token`, on this client's connection pool."""
        return AsyncWebClient(
            token=token,
            base_url=self.client.base_url,
            session=self.client.session,
            timeout=self.client.timeout,
        )


async def _answer(method: str, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
    """Slack's answer to `call`, or the typed error for its refusal (the one place that
    catches slack_sdk's SlackApiError)."""
    try:
        return await call
    except SlackApiError as error:
        raise slack_error(method, error) from error


def _warned(method: str, response: AsyncSlackResponse) -> None:
    """Slack takes a message whose `metadata` it cannot read and drops the metadata, saying so
    only in `warning` (e.g. `invalid_metadata_format`) and `response_metadata.messages`."""
    warning = response.get("warning")
    if isinstance(warning, str) and "metadata" in warning:
        problems = (response.get("response_metadata") or {}).get("messages")
        log.warning("%s warned %s: %s", method, warning, problems)
