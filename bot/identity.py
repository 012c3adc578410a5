"""Who is who: Slack users' profiles (zone, locale, email) and the Close user each maps to."""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

from pydantic import BaseModel
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.close.catalog import Catalog
from bot.close.models import User

log = logging.getLogger(__name__)


class SlackProfile(BaseModel):
    """The parts of `users.info` the bot uses."""

    user_id: str
    name: str = ""
    email: str | None = None
    tz: str = "UTC"
    tz_offset: int = 0  # seconds, as Slack gives it
    locale: str = "en-US"
    is_bot: bool = False
    deleted: bool = False
    is_restricted: bool = False
    is_admin: bool = False
    is_owner: bool = False

    @property
    def tz_offset_hours(self) -> float:
        hours = self.tz_offset / 3600
        return int(hours) if hours.is_integer() else round(hours, 2)

    @classmethod
    def from_users_info(cls, user: dict[str, Any]) -> SlackProfile:
        profile = user.get("profile") or {}
        return cls(
            user_id=user["id"],
            name=profile.get("real_name") or user.get("real_name") or user.get("name") or "",
            email=(profile.get("email") or None),
            tz=user.get("tz") or "UTC",
            tz_offset=int(user.get("tz_offset") or 0),
            locale=user.get("locale") or "en-US",
            is_bot=bool(user.get("is_bot")),
            deleted=bool(user.get("deleted")),
            is_restricted=bool(user.get("is_restricted") or user.get("is_ultra_restricted")),
            is_admin=bool(user.get("is_admin")),
            is_owner=bool(user.get("is_owner") or user.get("is_primary_owner")),
        )


class Mapping(BaseModel):
    """The Close user a Slack user maps to, how, and — when none — why and what to do."""

    slack_user_id: str
    close_user: User | None = None
    source: Literal["override", "email", "none"] = "none"
    reason: str = ""


class Identity:
    """Slack profile lookups (cached: one `users.info` per user per hour) and Slack→Close mapping."""

    def __init__(
        self,
        slack: AsyncWebClient,
        catalog: Catalog,
        *,
        profile_ttl: float = 3600.0,
        admin_user_ids: frozenset[str] = frozenset(),
    ) -> None:
        self._slack = slack
        self._catalog = catalog
        self._ttl = profile_ttl
        self._profiles: dict[str, tuple[float, SlackProfile]] = {}
        self.admin_user_ids = admin_user_ids

    async def profile(self, user_id: str) -> SlackProfile | None:
        """The user's Slack profile, or None when Slack does not know them or cannot answer."""
        cached = self._profiles.get(user_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            response = await self._slack.users_info(user=user_id, include_locale=True)
        except SlackApiError as error:
            log.warning("users.info failed for %s: %s", user_id, error.response.get("error"))
            return None
        profile = SlackProfile.from_users_info(response["user"])
        self._profiles[user_id] = (time.monotonic() + self._ttl, profile)
        return profile

    async def close_user_for(self, user_id: str) -> Mapping:
        profile = await self.profile(user_id)
        if profile is None:
            return Mapping(
                slack_user_id=user_id, reason="Slack did not return this user's profile."
            )
        if profile.is_bot:
            return Mapping(slack_user_id=user_id, reason="Bots cannot own opportunities.")
        if profile.deleted:
            return Mapping(slack_user_id=user_id, reason="This Slack account is deactivated.")
        if not profile.email:
            return Mapping(
                slack_user_id=user_id,
                reason="Slack did not share this user's email (the app needs the "
                "users:read.email scope), so they cannot be matched to a Close user.",
            )
        user = self._catalog.user_by_email(profile.email)
        if user is None:
            return Mapping(
                slack_user_id=user_id,
                reason=f"No Close user has the email {profile.email}. "
                "Ask a Close admin to invite them, or pick another owner.",
            )
        return Mapping(slack_user_id=user_id, close_user=user, source="email")
