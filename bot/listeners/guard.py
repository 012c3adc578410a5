"""Who may use the bot, and where: one Bolt middleware in front of every listener, with a polite refusal.

Besides the allow-lists: a person of another organization (Slack Connect) never uses the bot,
and under EXTERNAL_CHANNELS=off it declines in channels shared with other organizations. What
an event's envelope says of its channel (`is_ext_shared_channel`) is learned here on the way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pydantic import BaseModel
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.listeners.fallback import answer, notice_view, request_kind, tell_user
from bot.listeners.flexpane import DETAILS_REQUESTED, refuse_details
from bot.listeners.payload import str_at
from bot.services import Services
from bot.slack.audience import Audience, declines, flagged_channel
from bot.slack.errors import SlackError
from bot.tasks import spawn
from bot.unfurl.event import COMPOSER

log = logging.getLogger(__name__)

NOT_FOR_YOU = (
    "Sorry, you are not on the list of people who can log opportunities with me. "
    "Ask a Slack admin of this workspace if you need access."
)
NOT_HERE = (
    "Sorry, I am not set up to log opportunities in this channel. "
    "Try again from one of the channels your team uses for deals."
)
# `{team}`: the installing workspace's name.
NOT_YOUR_TEAM = "Sorry, this app is for {team} members."
NOT_IN_SHARED_CHANNELS = (
    "Sorry, I don't work in channels shared with other organizations. "
    "Log your opportunity from one of your team's own channels, or from a DM with me."
)
# Requests that carry a channel the bot would answer in, under EXTERNAL_CHANNELS=off.
# What a Slack Connect check may spend before the ack (a workspace name, a channel's audience):
# past it the request goes on (a post is still checked where it happens) or the note is generic.
SLACK_BUDGET = 1.0
_DECLINED_KINDS = frozenset({"command", "message_action", "block_actions"})


class Access(BaseModel):
    """The allow-lists (empty: everyone / everywhere). Admins are always allowed, anywhere."""

    allowed_user_ids: frozenset[str] = frozenset()
    allowed_channel_ids: frozenset[str] = frozenset()
    admin_user_ids: frozenset[str] = frozenset()

    @classmethod
    def of(cls, users: Iterable[str], channels: Iterable[str], admins: Iterable[str]) -> Access:
        return cls(
            allowed_user_ids=frozenset(users),
            allowed_channel_ids=frozenset(channels),
            admin_user_ids=frozenset(admins),
        )

    def refusal(self, user_id: str | None, channel_id: str | None) -> str | None:
        """Why this user may not act here, or None when they may.

        A request that names no user or channel (app events, Slack's own checks) is not
        refused on that count: only people are refused, and only where they are.
        """
        if user_id is not None and user_id in self.admin_user_ids:
            return None
        if self.allowed_user_ids and user_id is not None and user_id not in self.allowed_user_ids:
            return NOT_FOR_YOU
        if (
            self.allowed_channel_ids
            and channel_id is not None
            and channel_id not in self.allowed_channel_ids
        ):
            return NOT_HERE
        return None


def requester_team(body: object) -> str | None:
    """The Slack team of the person behind a request, as far as it says: an interaction's
    `user.team_id`, an event's `user_team`, a command's `team_id`."""
    return (
        str_at(body, "user", "team_id")
        or str_at(body, "event", "user_team")
        or str_at(body, "user_team")
        or (str_at(body, "team_id") if isinstance(body, dict) and "command" in body else None)
    )


def stranger(body: object, installing_team: str | None) -> bool:
    """Is the person behind this request of another organization than the installing one?"""
    team = requester_team(body)
    return installing_team is not None and team is not None and team != installing_team


def actor(body: object) -> tuple[str | None, str | None]:
    """(user id, channel id) of a command, interaction or event payload, as far as it says."""
    user = (
        str_at(body, "user_id")
        or str_at(body, "user", "id")
        or str_at(body, "user")
        or str_at(body, "event", "user")
    )
    channel = (
        str_at(body, "channel_id")
        or str_at(body, "channel", "id")
        or str_at(body, "container", "channel_id")
        or str_at(body, "event", "channel")
    )
    # A link still in the message composer: Slack does not say where it will be posted, so
    # the allow-list of channels cannot refuse it (its preview shows the lead's name only).
    return user, None if channel == COMPOSER else channel


async def _show_refusal(services: Services, body: dict[str, Any], text: str) -> None:
    """For interactions whose ack cannot carry a message: a modal, an updated modal, or a note."""
    kind = request_kind(body)
    trigger_id = str_at(body, "trigger_id")
    view_id = str_at(body, "view", "id") or str_at(body, "container", "view_id")
    try:
        if kind in ("shortcut", "message_action") and trigger_id:
            await services.slack_gateway.open_view(trigger_id, notice_view(text))
            return
        if kind == "block_actions" and view_id and not str_at(body, "response_url"):
            await services.slack_gateway.update_view(view_id, notice_view(text))
            return
    except SlackError as error:
        log.info("Could not show a refusal: %s", error.code)
    await tell_user(services, body, text)


def access_guard(
    services: Services, access: Access
) -> Callable[..., Awaitable[BoltResponse | None]]:
    """The middleware: lets allowed requests through, answers the others with a refusal."""

    async def guard(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        _learn_from_envelope(services, body)
        user_id, channel_id = actor(body)
        refusal = access.refusal(user_id, channel_id)
        if refusal is None:
            refusal = await _connect_refusal(services, body, context, channel_id)
        if refusal is None:
            await next()
            return None
        kind = request_kind(body)
        if kind == "event_callback":
            log.info("Ignored a %s event in %s", str_at(body, "event", "type"), channel_id)
            if str_at(body, "event", "type") == DETAILS_REQUESTED:  # a pane waits for an answer
                spawn(refuse_details(services, body), name="refuse-flexpane")
            return BoltResponse(status=200, body="")
        log.info("Refused a %s from %s in %s", kind, user_id, channel_id)
        payload = answer(body, refusal)
        if payload is None and kind in ("shortcut", "message_action", "block_actions"):
            spawn(_show_refusal(services, body, refusal), name="show-refusal")
        return BoltResponse(status=200, body=payload if payload is not None else "")

    return guard


def _learn_from_envelope(services: Services, body: dict[str, Any]) -> None:
    """An event's `is_ext_shared_channel`: noted at once (no I/O before the ack), stored for
    the other processes in the background when it is news."""
    flagged = flagged_channel(body)
    if flagged is None:
        return
    channel_id, audience = flagged
    audiences = services.slack_gateway.audiences
    if audiences.known(channel_id) is audience:
        return
    if audience is Audience.INTERNAL and audiences.known(channel_id) is Audience.EXTERNAL:
        # The envelope's flag does not cover a share still pending: only channel_unshared
        # or conversations.info (after the cache's time) makes an external channel internal.
        return
    audiences.note(channel_id, audience)
    spawn(audiences.learn(channel_id, audience, source="event"), name="learn-audience")


async def _connect_refusal(
    services: Services, body: dict[str, Any], context: AsyncBoltContext, channel_id: str | None
) -> str | None:
    """Slack Connect: a person of another organization, or (EXTERNAL_CHANNELS=off) a channel
    shared with one. Only `off` may cost a call before the ack, and only for a channel this
    process does not know yet."""
    authorized = context.authorize_result
    installing = authorized.team_id if authorized is not None else None
    if stranger(body, installing):
        try:
            name = await asyncio.wait_for(services.slack_gateway.team_name(), SLACK_BUDGET)
        except Exception as error:  # the refusal stands; only its wording is poorer
            log.info("Could not read the workspace's name: %s", type(error).__name__)
            name = None
        return NOT_YOUR_TEAM.format(team=name or "this workspace's")
    policy = services.settings.external_channels
    if policy != "off" or channel_id is None:
        return None
    # Events (link_shared included: its preview is declined, with a note, by the unfurler
    # once acked) are not refused here.
    if request_kind(body) not in _DECLINED_KINDS:
        return None
    try:
        audience = await asyncio.wait_for(services.slack_gateway.audience(channel_id), SLACK_BUDGET)
    except Exception as error:  # Slack cannot say: posts are still checked where they happen
        log.info("Could not tell who reads %s: %s", channel_id, type(error).__name__)
        return None
    return NOT_IN_SHARED_CHANNELS if declines(audience, policy) else None


def register(app: AsyncApp, services: Services) -> None:
    settings = services.settings
    access = Access.of(
        settings.allowed_user_ids, settings.allowed_channel_ids, settings.admin_user_ids
    )
    # Global middleware runs after Bolt's signature check and before every listener, so a
    # refused user reaches no command, modal, action, option list or App Home.
    app.middleware(access_guard(services, access))
