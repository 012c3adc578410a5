"""The parts of a Slack user the bot uses (zone, locale, email, who they are), from users.info/list."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

EMAIL_SCOPE = "users:read.email"
# Slackbot is a member of every workspace but is neither flagged a bot nor a person.
SLACKBOT_ID = "USLACKBOT"


class SlackProfile(BaseModel):
    """The parts of `users.info` the bot uses."""

    user_id: str
    name: str = ""
    handle: str = ""  # the `name` Slack shows after @
    email: str | None = None
    tz: str = "UTC"
    tz_offset: int = 0  # seconds, as Slack gives it
    locale: str = "en-US"
    is_bot: bool = False
    deleted: bool = False
    is_restricted: bool = False  # a guest: single- or multi-channel
    is_admin: bool = False
    is_owner: bool = False
    team_id: str | None = None  # their own workspace: another one for Slack Connect strangers

    @property
    def tz_offset_hours(self) -> float:
        hours = self.tz_offset / 3600
        return int(hours) if hours.is_integer() else round(hours, 2)

    @property
    def is_bot_like(self) -> bool:
        return self.is_bot or self.user_id == SLACKBOT_ID

    @property
    def label(self) -> str:
        """How to name them in plain text (modal errors cannot render a mention)."""
        return self.name or self.handle or self.user_id

    @classmethod
    def from_users_info(cls, user: dict[str, Any]) -> SlackProfile:
        profile = user.get("profile") or {}
        email = profile.get("email")
        return cls(
            user_id=user["id"],
            name=profile.get("real_name") or user.get("real_name") or user.get("name") or "",
            handle=user.get("name") or "",
            email=email.strip() if isinstance(email, str) and email.strip() else None,
            tz=user.get("tz") or "UTC",
            tz_offset=int(user.get("tz_offset") or 0),
            locale=user.get("locale") or "en-US",
            is_bot=bool(user.get("is_bot")),
            deleted=bool(user.get("deleted")),
            is_restricted=bool(user.get("is_restricted") or user.get("is_ultra_restricted")),
            is_admin=bool(user.get("is_admin")),
            is_owner=bool(user.get("is_owner") or user.get("is_primary_owner")),
            team_id=user.get("team_id") or None,
        )


def granted_scopes(headers: Mapping[str, Any] | None) -> frozenset[str] | None:
    """Scopes from Slack's `x-oauth-scopes` response header; None when the header is absent."""
    for key, value in (headers or {}).items():
        if key.lower() == "x-oauth-scopes":
            raw = value[0] if isinstance(value, list) and value else value
            return frozenset(s.strip() for s in str(raw).split(",") if s.strip())
    return None
