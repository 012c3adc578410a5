"""Identity: Slack profiles (cached), Slack→Close mapping with stored links, admin links, coverage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from rapidfuzz import process

from bot.close.catalog import Catalog
from bot.close.models import User
from bot.identity.mapping import Mapping, connected, decide
from bot.identity.profiles import EMAIL_SCOPE, SlackProfile, granted_scopes
from bot.identity.store import UserLink, UserLinkStore
from bot.slack.errors import RateLimited, SlackError
from bot.slack.gateway import SlackGateway
from bot.tasks import spawn

if TYPE_CHECKING:
    from bot.connections import CloseAccess, Connection

log = logging.getLogger(__name__)

MEMBERS_PAGE = 200  # Slack recommends at most 200 per users.list page
NAMED_ADMINS = 3  # how many configured admins an answer names before "or"
WORKSPACE_ADMIN = "a Slack workspace admin"
_WHO = "\x00who\x00"  # stands for who_can_link() until an answer needs the names


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LinkRefused(Exception):
    """A link or unlink that cannot be done; the message says why, for the person who asked."""


class CoverageRow(BaseModel):
    profile: SlackProfile
    mapping: Mapping


class Coverage(BaseModel):
    """Every active Slack member and the Close user they map to (for `doctor`)."""

    rows: list[CoverageRow]
    emails_visible: bool | None = None

    @property
    def mapped(self) -> list[CoverageRow]:
        return [row for row in self.rows if row.mapping.mapped]

    @property
    def unmapped(self) -> list[CoverageRow]:
        return [row for row in self.rows if not row.mapping.mapped]


class Identity:
    """Who a Slack user is: their profile (one `users.info` per user per `profile_ttl`) and the
    Close user they map to. Overrides and email matches live in `user_links`; email matches
    expire after `email_link_ttl`, so a restart or a Slack/Close hiccup does not unmap anyone.

    Links read from the store are kept in memory for `link_cache_ttl` seconds (the
    submission's ack must not wait on the database). A link or unlink made through this
    process is seen at once; one made through another instance sharing the database is seen
    here within `link_cache_ttl`.
    """

    def __init__(
        self,
        slack: SlackGateway,
        catalog: Catalog,
        *,
        links: UserLinkStore | None = None,
        access: CloseAccess | None = None,
        profile_ttl: float = 3600.0,
        email_link_ttl: timedelta = timedelta(hours=24),
        admin_user_ids: frozenset[str] = frozenset(),
        clock: Callable[[], datetime] = _utc_now,
        link_cache_ttl: float = 60.0,
    ) -> None:
        self._slack = slack
        self._catalog = catalog
        self._links = links
        self._ttl = profile_ttl
        self.email_link_ttl = email_link_ttl
        self.admin_user_ids = admin_user_ids
        self._clock = clock
        self._profiles: dict[str, tuple[float, SlackProfile]] = {}
        self._inflight: dict[str, asyncio.Task[SlackProfile | None]] = {}
        self._link_ttl = link_cache_ttl
        self._links_cached: dict[str, tuple[float, UserLink | None]] = {}
        # Close user id -> the Slack user mapped to them (owner alerts), for `link_cache_ttl`.
        self._slack_users: dict[str, tuple[float, str | None]] = {}
        self._remembering: set[str] = set()  # users whose link write is under way
        # What Slack's x-oauth-scopes said last: None until a response carried the header.
        self.emails_visible: bool | None = None
        # People's own Close connections (OAuth), when configured: a connected person maps to
        # the Close user they connected as (seen at once here after a connect or disconnect in
        # this process, within `link_cache_ttl` from another).
        self._access = access

    async def _connection(self, user_id: str) -> Connection | None:
        if self._access is None:
            return None
        return await self._access.known(user_id, within=self._link_ttl)

    # --- Slack profiles ---

    async def profile(self, user_id: str) -> SlackProfile | None:
        """The user's Slack profile, or None when Slack does not know them or cannot answer."""
        cached = self._profiles.get(user_id)
        loop = asyncio.get_running_loop()
        if cached and cached[0] > loop.time():
            return cached[1]
        task = self._inflight.get(user_id)
        if task is None:
            # One users.info per user at a time, however many handlers ask at once.
            task = asyncio.ensure_future(self._fetch_profile(user_id))
            self._inflight[user_id] = task
            task.add_done_callback(lambda _t: self._inflight.pop(user_id, None))
        # Shielded: a caller's timeout must not cancel the lookup the others are waiting on.
        return await asyncio.shield(task)

    async def _fetch_profile(self, user_id: str) -> SlackProfile | None:
        try:
            answer = await self._slack.user_info(user_id)
        except SlackError as error:
            log.warning("users.info failed for %s: %s", user_id, error.code)
            return None
        self._note_scopes(answer.headers)
        profile = SlackProfile.from_users_info(answer.user)
        self._remember_profile(profile)
        return profile

    def _remember_profile(self, profile: SlackProfile) -> None:
        now = asyncio.get_running_loop().time()
        remember_user(self._profiles, profile.user_id, (now + self._ttl, profile), now)

    def _note_scopes(self, headers: Any) -> None:
        scopes = granted_scopes(headers)
        if scopes is None:
            return
        visible = EMAIL_SCOPE in scopes
        if visible == self.emails_visible:
            return
        if not visible:
            # Said once per change, not once per request.
            log.warning(
                "Slack did not grant %s: users cannot be matched to Close by email, only by "
                "admin links (/opportunity link @user <close email>). Add the scope to the "
                "Slack app and reinstall it.",
                EMAIL_SCOPE,
            )
        elif self.emails_visible is False:
            log.info("Slack now grants %s: matching users by email again.", EMAIL_SCOPE)
        self.emails_visible = visible

    async def members(self) -> list[SlackProfile]:
        """Every member of the workspace (users.list, paged); also warms the profile cache."""
        profiles: list[SlackProfile] = []
        cursor: str | None = None
        while True:
            page = await self._slack.members_page(limit=MEMBERS_PAGE, cursor=cursor)
            self._note_scopes(page.headers)
            for member in page.members:
                profile = SlackProfile.from_users_info(member)
                self._remember_profile(profile)
                profiles.append(profile)
            cursor = page.next_cursor
            if not cursor:
                return profiles

    # --- admins ---

    async def is_admin(self, user_id: str) -> bool:
        """May link and unlink: Slack workspace admins and owners, and ADMIN_USER_IDS."""
        if user_id in self.admin_user_ids:
            return True
        profile = await self.profile(user_id)
        return (
            profile is not None and not profile.deleted and (profile.is_admin or profile.is_owner)
        )

    async def who_can_link(self) -> str:
        """Plain-text names of who can fix a mapping, for answers and modal errors."""
        ids = sorted(self.admin_user_ids)[:NAMED_ADMINS]
        profiles = await asyncio.gather(*(self.profile(uid) for uid in ids))
        names = [p.label for p in profiles if p is not None and not p.deleted]
        if not names:
            return WORKSPACE_ADMIN
        return ", ".join(names) + " or " + WORKSPACE_ADMIN

    def admin_mentions(self) -> str:
        """The configured admins as Slack mentions (for mrkdwn answers)."""
        return ", ".join(f"<@{uid}>" for uid in sorted(self.admin_user_ids)[:NAMED_ADMINS])

    # --- mapping ---

    async def _link(self, user_id: str) -> UserLink | None:
        if self._links is None:
            return None
        now = asyncio.get_running_loop().time()
        cached = self._links_cached.get(user_id)
        if cached and cached[0] > now:
            return cached[1]
        link = await self._links.get(user_id)
        remember_user(self._links_cached, user_id, (now + self._link_ttl, link), now)
        return link

    def _forget_link(self, user_id: str) -> None:
        self._links_cached.pop(user_id, None)

    async def close_user_for(self, user_id: str, *, remember_later: bool = False) -> Mapping:
        """The Close user `user_id` maps to (override, else email), or why not and who can fix it.

        Costs at most one users.info per user per hour and one indexed read of `user_links`
        per user per `link_cache_ttl`; Close is never called (the catalog is in memory).
        `remember_later`: store a new or refreshed email match in the background instead of
        before answering (for the submission's ack, which must not wait on a write).
        """
        profile = await self.profile(user_id)
        try:
            link = await self._link(user_id)
        except Exception:
            # Guessing by email could pick the wrong owner when an override exists: say so.
            log.warning("Could not read the user link of %s", user_id, exc_info=True)
            return Mapping(
                slack_user_id=user_id,
                slack_name=profile.label if profile else "",
                reason="I could not read the stored user links (the database did not answer).",
                fix="Try again in a minute.",
                transient=True,
            )
        mapping = self._decide(user_id, profile, link, who=_WHO)
        if not mapping.refused:
            as_connected = await self._as_connected(mapping)
            if as_connected is not None:
                return as_connected
        if _WHO in mapping.fix:  # only unmapped answers name admins: look them up only then
            mapping = self._decide(user_id, profile, link, who=await self.who_can_link())
        if remember_later:
            if user_id not in self._remembering:
                self._remembering.add(user_id)
                spawn(self._remember_safely(mapping, profile, link), name="remember-user-link")
        else:
            await self._remember_safely(mapping, profile, link)
        return mapping

    async def slack_user_for(self, close_user_id: str) -> str | None:
        """The Slack user who maps to Close user `close_user_id` (the other way round), or None.

        The candidates are those connected to Close as them, the stored links to them (admin
        links first) and the Slack member with their email (users.lookupByEmail); the first
        whose own mapping is that Close user is the one. Kept in memory for `link_cache_ttl`.
        Raises RateLimited (ask again later).
        """
        loop_now = asyncio.get_running_loop().time()
        cached = self._slack_users.get(close_user_id)
        if cached and cached[0] > loop_now:
            return cached[1]
        # Connected as them first (the connection outranks every link), then the links.
        candidates = (
            await self._access.connections.of_close_user(close_user_id)
            if self._access is not None
            else []
        )
        if self._links is not None:
            links = await self._links.of_close_user(close_user_id)
            candidates += [link.slack_user_id for link in links]
        user = self._catalog.user(close_user_id)
        if user is not None and user.email:
            try:
                found = await self._slack.user_id_by_email(user.email)
            except RateLimited:
                raise
            except SlackError as error:
                log.info("No Slack member found for %s: %s", close_user_id, error.code)
                found = None
            if found is not None and found not in candidates:
                candidates.append(found)
        slack_user: str | None = None
        for candidate in candidates:
            mapping = await self.close_user_for(candidate)
            if mapping.close_user is not None and mapping.close_user.id == close_user_id:
                slack_user = candidate
                break
        entry = (loop_now + self._link_ttl, slack_user)
        remember_user(self._slack_users, close_user_id, entry, loop_now)
        return slack_user

    async def _as_connected(self, mapping: Mapping) -> Mapping | None:
        try:
            connection = await self._connection(mapping.slack_user_id)
        except Exception:
            log.warning("Could not read the Close connection of %s", mapping.slack_user_id)
            return None
        if connection is None:
            return None
        user = self._catalog.user(connection.close_user_id) or User(id=connection.close_user_id)
        return connected(mapping, user, connection.connected_at)

    async def _remember_safely(
        self, mapping: Mapping, profile: SlackProfile | None, link: UserLink | None
    ) -> None:
        user_id = mapping.slack_user_id
        try:
            await self._remember(mapping, profile, link)
        except Exception:  # the cache is a convenience: a failed write must not fail a deal
            log.warning("Could not store the user link of %s", user_id, exc_info=True)
        finally:
            self._remembering.discard(user_id)

    def _decide(
        self, user_id: str, profile: SlackProfile | None, link: UserLink | None, *, who: str
    ) -> Mapping:
        return decide(
            user_id,
            profile,
            link,
            self._catalog,
            now=self._clock(),
            emails_visible=self.emails_visible,
            who_can_link=who,
        )

    async def _remember(
        self, mapping: Mapping, profile: SlackProfile | None, link: UserLink | None
    ) -> None:
        """Keep the stored email match in step with what was just decided from live answers."""
        if self._links is None or profile is None or profile.email is None:
            return
        if not self._catalog.loaded or (link is not None and link.source == "override"):
            return
        now = self._clock()
        user = mapping.close_user
        if mapping.source == "email" and user is not None:
            email = profile.email.strip().lower()
            half_life = now + self.email_link_ttl / 2
            unchanged = (
                link is not None
                and link.close_user_id == user.id
                and link.email == email
                and link.expires_at is not None
                and link.expires_at > half_life
            )
            if not unchanged:  # write rarely: only new, changed, or past half its life
                try:
                    await self._links.remember_email(
                        mapping.slack_user_id,
                        user.id,
                        email=email,
                        now=now,
                        ttl=self.email_link_ttl,
                    )
                finally:
                    self._forget_link(mapping.slack_user_id)
        elif link is not None and not mapping.refused:
            # Close or Slack now say otherwise: the old match must not stand in later.
            try:
                await self._links.forget_email(mapping.slack_user_id)
            finally:
                self._forget_link(mapping.slack_user_id)

    async def coverage(self) -> Coverage:
        """Every active human member and their mapping: users.list pages plus one store read."""
        members = [p for p in await self.members() if not p.is_bot_like and not p.deleted]
        links = await self._links.many() if self._links else {}
        who = await self.who_can_link()
        rows = [
            CoverageRow(
                profile=profile,
                mapping=self._decide(profile.user_id, profile, links.get(profile.user_id), who=who),
            )
            for profile in members
        ]
        return Coverage(rows=rows, emails_visible=self.emails_visible)

    # --- admin links ---

    def find_close_user(self, target: str) -> User:
        """The active Close user an admin means by `target` (email or `user_…` id), or why not."""
        target = target.strip()
        catalog = self._catalog
        if not catalog.loaded:
            raise LinkRefused("I have not loaded the Close user list yet. Try again in a minute.")
        if "@" not in target:
            user = catalog.user(target)
            if user is None:
                raise LinkRefused(
                    f"No Close user has the id `{target}`. Give their Close email or a `user_…` id."
                )
        else:
            user = catalog.active_user_by_email(target) or catalog.user_by_email(target)
            if user is None:
                emails = [u.email for u in catalog.active_users if u.email]
                guess = process.extractOne(target.lower(), emails, score_cutoff=85)
                hint = f" Did you mean `{guess[0]}`?" if guess else ""
                raise LinkRefused(
                    f"No member of the Close organization has the email `{target}`.{hint} "
                    "Check the spelling, or invite them in Close first (Settings › Team)."
                )
        if not catalog.is_active(user.id):
            raise LinkRefused(
                f"{user.label} is deactivated in Close. Reactivate them there first, "
                "or link someone else."
            )
        return user

    async def link(self, slack_user_id: str, target: str, *, set_by: str) -> Mapping:
        """Store an override (admins only: the caller checks); returns the new mapping."""
        if self._links is None:
            raise LinkRefused("This bot has no database to keep links in.")
        profile = await self.profile(slack_user_id)
        if profile is None:
            raise LinkRefused(f"Slack does not know the user <@{slack_user_id}>.")
        refused = self._decide(slack_user_id, profile, None, who=WORKSPACE_ADMIN)
        if refused.refused:
            raise LinkRefused(f"<@{slack_user_id}> cannot be linked: {refused.reason}")
        user = self.find_close_user(target)
        try:
            await self._links.set_override(
                slack_user_id, user.id, email=user.email or None, set_by=set_by, now=self._clock()
            )
        finally:
            self._forget_link(slack_user_id)
        log.info("%s linked %s to Close user %s", set_by, slack_user_id, user.id)
        return await self.close_user_for(slack_user_id)

    async def unlink(self, slack_user_id: str, *, by: str) -> tuple[UserLink | None, Mapping]:
        """Remove an override; returns it (None if there was none) and the mapping now."""
        try:
            removed = await self._links.remove_override(slack_user_id) if self._links else None
        finally:
            self._forget_link(slack_user_id)
        if removed is not None:
            log.info("%s unlinked %s from Close user %s", by, slack_user_id, removed.close_user_id)
        return removed, await self.close_user_for(slack_user_id)


_T = TypeVar("_T")

# Per-user memories hold at most this many people: the expired go first, then the longest
# unrefreshed (each entry is re-inserted when refreshed, so the dict's order is by last write),
# down to nine tenths, so a full memory is swept once per many new users, not on each.
MAX_REMEMBERED_USERS = 10_000


def remember_user(
    memory: dict[str, tuple[float, _T]],
    key: str,
    entry: tuple[float, _T],
    now: float,
    *,
    cap: int = MAX_REMEMBERED_USERS,
) -> None:
    """`memory[key] = entry` (entry: (valid until, value)), keeping `memory` within `cap`."""
    memory.pop(key, None)
    memory[key] = entry
    if len(memory) <= cap:
        return
    for stale in [k for k, (until, _) in memory.items() if until <= now]:
        del memory[stale]
    while len(memory) > cap * 9 // 10:
        del memory[next(iter(memory))]
