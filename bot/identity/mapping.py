"""Deciding which Close user a Slack user is (override, then email), and saying why in plain words."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from bot.close.catalog import Catalog
from bot.close.models import User
from bot.identity.profiles import EMAIL_SCOPE, SlackProfile
from bot.identity.store import UserLink

# `connected`: the person connected their own Close account (OAuth); it outranks the rest.
Source = Literal["connected", "override", "email", "none"]


class Mapping(BaseModel):
    """The Close user a Slack user maps to, how, and — when none — why and what to do."""

    slack_user_id: str
    close_user: User | None = None
    source: Source = "none"
    reason: str = ""  # how they were matched, or why they could not be
    fix: str = ""  # what to do about it and who can; empty when mapped or when nothing helps
    refused: bool = False  # bots, deactivated accounts, guests: no link makes them owners
    # Unmapped only for now (Slack, Close or the store did not answer): asking later may do.
    transient: bool = False
    slack_name: str = ""
    link: UserLink | None = None  # the stored link this answer used, if any
    connected_at: datetime | None = None  # when they connected their Close account (OAuth)

    @property
    def mapped(self) -> bool:
        return self.close_user is not None

    def explain(self) -> str:
        return " ".join(part for part in (self.reason, self.fix) if part)

    def owner_error(self, *, is_self: bool) -> str:
        """The inline error under the modal's `owner` field (plain text: no mentions there)."""
        if self.refused:
            return self.explain()
        who = "You have" if is_self else f"{self.slack_name or 'This person'} has"
        return f"{who} no Close account I can match. {self.explain()}"


def connected(base: Mapping, user: User, connected_at: datetime) -> Mapping:
    """The person connected their own Close account: that user is who they are."""
    return base.model_copy(
        update={
            "close_user": user,
            "source": "connected",
            "reason": f"They connected their Close account as {user.label} on "
            f"{connected_at:%Y-%m-%d} (this outranks admin links and email).",
            "fix": "",
            "transient": False,
            "connected_at": connected_at,
        }
    )


def link_command(profile: SlackProfile | None, slack_user_id: str) -> str:
    handle = profile.handle if profile and profile.handle else slack_user_id
    return f"`/opportunity link @{handle} <their Close email>`"


def decide(
    slack_user_id: str,
    profile: SlackProfile | None,
    link: UserLink | None,
    catalog: Catalog,
    *,
    now: datetime,
    emails_visible: bool | None,
    who_can_link: str,
) -> Mapping:
    """Who `slack_user_id` is in Close: pure, from what Slack, Close and the store already said.

    Order: refusals (bots, deactivated, guests), an admin override, then the Slack email
    against active Close members. A cached email match stands in when Slack or Close cannot
    answer right now (profile missing, emails hidden, catalog not loaded) until it expires.
    """
    name = profile.label if profile else ""
    base = Mapping(slack_user_id=slack_user_id, slack_name=name)
    how_to_link = f"{_cap(who_can_link)} can link them: {link_command(profile, slack_user_id)}."

    if profile is not None:
        refusal = _refusal(profile)
        if refusal:
            return base.model_copy(
                update={"reason": refusal[0], "fix": refusal[1], "refused": True}
            )

    if link is not None and link.source == "override" and link.close_user_id:
        return _from_override(base, link, catalog, who_can_link, profile)

    cached = link if link is not None and link.source == "email" and link.fresh(now) else None
    cached_user = _cached_user(cached, catalog)
    if profile is None:
        return _without_profile(base, cached, cached_user)
    if profile.email is None:
        return _without_email(
            base, cached, cached_user, emails_visible=emails_visible, how_to_link=how_to_link
        )
    email = profile.email.strip().lower()
    if not catalog.loaded:
        return _before_catalog(base, email, cached, cached_user)
    return _by_email(
        base,
        email,
        cached,
        catalog,
        who_can_link=who_can_link,
        how_to_link=how_to_link,
        link_them=link_command(profile, slack_user_id),
    )


def _without_profile(base: Mapping, cached: UserLink | None, cached_user: User | None) -> Mapping:
    """Slack did not answer with the profile: a remembered email match, else ask again soon."""
    if cached_user is not None:
        return _remembered(base, cached_user, cached, "Slack did not answer just now")
    return base.model_copy(
        update={
            "reason": "Slack did not return this user's profile, so I cannot match them.",
            "fix": "Try again in a minute.",
            "transient": True,
        }
    )


def _without_email(
    base: Mapping,
    cached: UserLink | None,
    cached_user: User | None,
    *,
    emails_visible: bool | None,
    how_to_link: str,
) -> Mapping:
    """The profile shows no email: a remembered match, else why (a missing scope hides every
    email, which an admin fixes once for everybody) and how to link them by hand."""
    if cached_user is not None:
        return _remembered(base, cached_user, cached, "Slack does not show emails now")
    if emails_visible is False:
        reason = (
            f"I cannot see Slack email addresses (the app lacks the {EMAIL_SCOPE} "
            "scope), so nobody is matched by email."
        )
        fix = f"{how_to_link} A Slack admin can also add {EMAIL_SCOPE} and reinstall the app."
    else:
        reason = "Their Slack profile shows no email address to match with Close."
        fix = how_to_link
    return base.model_copy(update={"reason": reason, "fix": fix})


def _before_catalog(
    base: Mapping, email: str, cached: UserLink | None, cached_user: User | None
) -> Mapping:
    """Close's users are not known yet: a remembered match for this same email, else ask again
    soon (an email changed in Slack since must not keep the old match)."""
    if cached_user is not None and cached is not None and cached.email == email:
        return _remembered(base, cached_user, cached, "Close's user list is still loading")
    return base.model_copy(
        update={
            "reason": "I have not loaded the Close user list yet (Close may be unreachable).",
            "fix": "Try again in a minute.",
            "transient": True,
        }
    )


def _by_email(
    base: Mapping,
    email: str,
    cached: UserLink | None,
    catalog: Catalog,
    *,
    who_can_link: str,
    how_to_link: str,
    link_them: str,
) -> Mapping:
    """The active Close member with the Slack email, else why none is (deactivated, or absent)."""
    user = catalog.active_user_by_email(email)
    if user is not None:
        return base.model_copy(
            update={
                "close_user": user,
                "source": "email",
                "reason": f"Slack email {email} matches the Close user {user.label}.",
                "link": cached,
            }
        )
    former = catalog.user_by_email(email)
    if former is not None:
        reason = (
            f"The Close user with the email {email} ({former.display_name}) is deactivated "
            "in the Close organization."
        )
        fix = f"Reactivate them in Close, or {who_can_link} can link them to another Close user: "
        return base.model_copy(update={"reason": reason, "fix": fix + link_them + "."})
    return base.model_copy(
        update={
            "reason": f"No active member of the Close organization has the email {email}.",
            "fix": f"Invite them to Close with that email, or {how_to_link}",
        }
    )


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _refusal(profile: SlackProfile) -> tuple[str, str] | None:
    if profile.is_bot_like:
        return "Bots cannot own opportunities.", "Pick a person as the owner."
    if profile.deleted:
        return "This Slack account is deactivated.", "Pick someone else as the owner."
    if profile.is_restricted:
        return (
            "Guests of the Slack workspace cannot own opportunities.",
            "Pick a full member of the workspace as the owner.",
        )
    return None


def _from_override(
    base: Mapping,
    link: UserLink,
    catalog: Catalog,
    who_can_link: str,
    profile: SlackProfile | None,
) -> Mapping:
    if not catalog.loaded:
        # The admin chose this user; trust it until Close's list arrives to say otherwise.
        user = User(id=link.close_user_id or "", email=link.email or "")
        reason = f"An admin linked them to the Close user {user.label} (overrides email)."
        return base.model_copy(
            update={"close_user": user, "source": "override", "reason": reason, "link": link}
        )
    known = catalog.user(link.close_user_id)
    if known is not None and catalog.is_active(known.id):
        reason = f"An admin linked them to the Close user {known.label} (overrides email)."
        return base.model_copy(
            update={"close_user": known, "source": "override", "reason": reason, "link": link}
        )
    target = known.label if known else (link.email or link.close_user_id or "?")
    return base.model_copy(
        update={
            "reason": f"They are linked to the Close user {target}, who is no longer an active "
            "member of the Close organization.",
            "fix": f"{_cap(who_can_link)} can link them to someone else: "
            f"{link_command(profile, base.slack_user_id)}.",
            "link": link,
        }
    )


def _cached_user(cached: UserLink | None, catalog: Catalog) -> User | None:
    if cached is None or not cached.close_user_id:
        return None
    if not catalog.loaded:
        return User(id=cached.close_user_id, email=cached.email or "")
    return catalog.user(cached.close_user_id) if catalog.is_active(cached.close_user_id) else None


def _remembered(base: Mapping, user: User, cached: UserLink | None, why: str) -> Mapping:
    email = cached.email if cached and cached.email else user.email
    return base.model_copy(
        update={
            "close_user": user,
            "source": "email",
            "reason": f"Slack email {email} matched the Close user {user.label} "
            f"(remembered: {why}).",
            "link": cached,
        }
    )
