"""Who may use the bot, and where: one Bolt middleware in front of every listener, with a polite refusal."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pydantic import BaseModel
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse

from bot.listeners.fallback import answer, notice_view, request_kind, tell_user
from bot.listeners.payload import str_at
from bot.services import Services
from bot.slack.errors import SlackError
from bot.tasks import spawn

log = logging.getLogger(__name__)

NOT_FOR_YOU = (
    "Sorry, you are not on the list of people who can log opportunities with me. "
    "Ask a Slack admin of this workspace if you need access."
)
NOT_HERE = (
    "Sorry, I am not set up to log opportunities in this channel. "
    "Try again from one of the channels your team uses for deals."
)


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
    return user, channel


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
        body: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        user_id, channel_id = actor(body)
        refusal = access.refusal(user_id, channel_id)
        if refusal is None:
            await next()
            return None
        kind = request_kind(body)
        log.info("Refused a %s from %s in %s", kind, user_id, channel_id)
        payload = answer(body, refusal)
        if payload is None and kind in ("shortcut", "message_action", "block_actions"):
            spawn(_show_refusal(services, body, refusal), name="show-refusal")
        return BoltResponse(status=200, body=payload if payload is not None else "")

    return guard


def register(app: AsyncApp, services: Services) -> None:
    settings = services.settings
    access = Access.of(
        settings.allowed_user_ids, settings.allowed_channel_ids, settings.admin_user_ids
    )
    # Global middleware runs after Bolt's signature check and before every listener, so a
    # refused user reaches no command, modal, action, option list or App Home.
    app.middleware(access_guard(services, access))
