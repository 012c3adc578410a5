"""Who can read a channel (a DM, our own people, or people of another organization), and
whether Close data may be posted there: the one place that decides it.

A channel is *external* when it is shared with another organization or such a share is
pending (Slack Connect: `conversations.info`'s `is_ext_shared` / `is_pending_ext_shared`;
`is_shared` and `is_org_shared` alone mean sharing inside our own organization). What the bot
learns is kept in memory for a while and in the `channel_audiences` table, so every process
knows it after one `conversations.info`; events correct it (`is_ext_shared_channel` on their
envelopes, `channel_shared` / `channel_unshared`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from bot.store.db import dialect_insert, writer_for
from bot.store.tables import ChannelAudienceRow

log = logging.getLogger(__name__)

ExternalChannels = Literal["private", "allow", "off"]


class Audience(StrEnum):
    DM = "dm"  # the person and the app
    INTERNAL = "internal"  # people of the installing organization only
    EXTERNAL = "external"  # shared (or being shared) with another organization


def may_show_close_data(audience: Audience, policy: ExternalChannels) -> bool:
    """May Close data (values, status, confidence, owner, contacts, notes, custom fields,
    counts) be posted where `audience` reads it, under EXTERNAL_CHANNELS=`policy`?"""
    return audience is not Audience.EXTERNAL or policy == "allow"


def declines(audience: Audience, policy: ExternalChannels) -> bool:
    """Does the bot decline to work here at all (EXTERNAL_CHANNELS=off in an external one)?"""
    return audience is Audience.EXTERNAL and policy == "off"


class PreviewScope(StrEnum):
    """What a link preview may show, given who will read it."""

    CLOSE_DATA = "close_data"  # the lead with its status and opportunities
    NAME_ONLY = "name_only"  # the lead's name (linked), nothing else of Close
    DECLINED = "declined"  # no preview: the bot declines there (EXTERNAL_CHANNELS=off)


def preview_scope(audience: Audience | None, policy: ExternalChannels | None) -> PreviewScope:
    """What a preview read by `audience` may show under EXTERNAL_CHANNELS=`policy`.

    `audience` None: not known (a link still in the message composer, whose channel Slack does
    not say, or a channel Slack would not describe): no Close data, unless `allow`. `policy`
    None: a gateway that enforces nothing."""
    if policy is None or policy == "allow":
        return PreviewScope.CLOSE_DATA
    if audience is None:
        return PreviewScope.NAME_ONLY
    if declines(audience, policy):
        return PreviewScope.DECLINED
    if may_show_close_data(audience, policy):
        return PreviewScope.CLOSE_DATA
    return PreviewScope.NAME_ONLY


def audience_of(channel: dict[str, Any]) -> Audience:
    """The audience of conversations.info's `channel` object."""
    if channel.get("is_ext_shared") or channel.get("is_pending_ext_shared"):
        return Audience.EXTERNAL
    if channel.get("is_im"):
        return Audience.DM
    return Audience.INTERNAL


def dm_by_id(channel_id: str) -> bool:
    """A channel id that is the app's DM with someone: a `D…` conversation, or a user id (a
    post to a user id goes to their DM with the app). No call needed."""
    return channel_id.startswith(("D", "U", "W"))


def flagged_channel(body: object) -> tuple[str, Audience] | None:
    """What an Events API envelope says of its channel: `is_ext_shared_channel` (only events
    carry it; commands and interactions do not)."""
    if not isinstance(body, dict) or not isinstance(body.get("is_ext_shared_channel"), bool):
        return None
    event = body.get("event")
    channel = event.get("channel") if isinstance(event, dict) else None
    if isinstance(channel, dict):
        channel = channel.get("id")
    if not isinstance(channel, str) or channel[:1] not in ("C", "G", "D"):
        return None  # no conversation (a link still being typed, an app event)
    if body["is_ext_shared_channel"]:
        return channel, Audience.EXTERNAL
    return channel, Audience.DM if dm_by_id(channel) else Audience.INTERNAL


class AudienceStore:
    """The `channel_audiences` table: what any process of the bot learned about a channel."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, dialect: str) -> None:
        self._sessions = sessions
        self._dialect = dialect
        self._writer = writer_for(sessions)

    async def get(self, channel_id: str) -> tuple[Audience, datetime] | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(ChannelAudienceRow).where(ChannelAudienceRow.channel_id == channel_id)
            )
        if row is None:
            return None
        try:
            return Audience(row.audience), row.learned_at
        except ValueError:
            return None

    async def put(self, channel_id: str, audience: Audience, *, source: str, now: datetime) -> None:
        values: dict[str, Any] = {
            "channel_id": channel_id,
            "audience": audience.value,
            "source": source[:32],
            "learned_at": now,
        }
        insert = dialect_insert(self._dialect)(ChannelAudienceRow).values(**values)
        statement = insert.on_conflict_do_update(
            index_elements=[ChannelAudienceRow.channel_id],
            set_={k: v for k, v in values.items() if k != "channel_id"},
        )

        def upsert(session: Session) -> None:
            session.execute(statement)

        await self._writer.run(upsert)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ChannelAudiences:
    """`audience(channel_id)`: from memory, else the table, else one `conversations.info`
    (concurrent askers of one channel share it). `ask` is the gateway's conversations.info; its
    typed errors come out as they are (a channel Slack will not describe is not posted to)."""

    def __init__(
        self,
        ask: Callable[[str], Awaitable[dict[str, Any]]],
        *,
        store: AudienceStore | None = None,
        ttl_seconds: float = 3600.0,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._ask = ask
        self._store = store
        self._ttl = ttl_seconds
        self._now = now
        self._known: dict[str, tuple[Audience, float]] = {}  # channel -> (audience, monotonic)
        self._asking: dict[str, asyncio.Future[Audience]] = {}

    def known(self, channel_id: str) -> Audience | None:
        """What this process knows now, without any I/O (None: it would have to ask)."""
        if dm_by_id(channel_id):
            return Audience.DM
        found = self._known.get(channel_id)
        if found is None or time.monotonic() - found[1] > self._ttl:
            return None
        return found[0]

    async def audience(self, channel_id: str) -> Audience:
        known = self.known(channel_id)
        if known is not None:
            return known
        pending = self._asking.get(channel_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Audience] = asyncio.get_running_loop().create_future()
        self._asking[channel_id] = future
        try:
            found = await self._look_up(channel_id)
            future.set_result(found)
            return found
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: a lone asker must not leave it "never retrieved"
            raise
        finally:
            del self._asking[channel_id]

    async def _look_up(self, channel_id: str) -> Audience:
        if self._store is not None:
            stored = await self._store.get(channel_id)
            if stored is not None:
                audience, learned_at = stored
                age = (self._now() - learned_at).total_seconds()
                if age <= self._ttl:
                    self._known[channel_id] = (audience, time.monotonic() - max(age, 0.0))
                    return audience
        channel = await self._ask(channel_id)
        audience = audience_of(channel)
        await self.learn(channel_id, audience, source="conversations.info")
        return audience

    def note(self, channel_id: str, audience: Audience) -> None:
        """Remember in this process only (no I/O: safe before an ack)."""
        self._known[channel_id] = (audience, time.monotonic())

    async def learn(self, channel_id: str, audience: Audience, *, source: str) -> None:
        """Remember, here and for the other processes."""
        before = self.known(channel_id)
        self.note(channel_id, audience)
        if before is not None and before is not audience:
            log.info("Channel %s is now %s (%s)", channel_id, audience.value, source)
        if self._store is not None:
            await self._store.put(channel_id, audience, source=source, now=self._now())
