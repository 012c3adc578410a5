"""Answering `link_shared`: who shared, which Close leads, one cached read per lead, one chat.unfurl."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from bot.blocks.entities import lead_card
from bot.blocks.messages import Message
from bot.blocks.previews import (
    COMPOSER_NAME_ONLY_TEXT,
    NAME_ONLY_TEXT,
    PREVIEW_DECLINED_TEXT,
    lead_name_only,
    lead_not_found,
    lead_preview,
)
from bot.close.client import CloseClient
from bot.close.errors import CloseAccessBroken, CloseError, CloseNotConnected, CloseNotFound
from bot.close.models import LeadWithOpportunities
from bot.connections.clients import CloseClients
from bot.identity import Identity
from bot.slack.audience import PreviewScope
from bot.slack.errors import Gone, RateLimited, SlackError
from bot.slack.gateway import SlackGateway
from bot.unfurl.cache import SeenRecently, SharedCache
from bot.unfurl.deliveries import Deliveries
from bot.unfurl.event import LinkShared
from bot.unfurl.links import lead_id_in

log = logging.getLogger(__name__)

# A lead read from Close serves every preview of it for this long: the same link pasted in
# five channels costs one read. Short, so a preview is at most this stale.
LEAD_TTL_SECONDS = 30.0
# Slack redelivers an event it thinks we missed (X-Slack-Retry-Num) within minutes: this
# process remembers it that long (every process, through `Deliveries`).
EVENT_MEMORY_SECONDS = 600.0
# Declining a preview (EXTERNAL_CHANNELS=off) is told to a person once per channel this often.
DECLINED_NOTE_SECONDS = 3600.0
# Past these, no preview rather than a late one or one with an unchecked sharer.
MAPPING_BUDGET_SECONDS = 3.0
CLOSE_BUDGET_SECONDS = 8.0
# A rate-limited chat.unfurl is tried once more after Slack's Retry-After, if that is this soon.
RATE_LIMIT_MAX_WAIT_SECONDS = 10.0


# Told privately that they cannot act in Close yet (not connected under CLOSE_ACCESS=personal,
# or a broken connection): the listener's *Connect Close* prompt.
TellCannotAct = Callable[[LinkShared, Exception], Awaitable[None]]


class Unfurler:
    """Previews of Close lead links for sharers who are active Close users.

    What a preview shows depends on who shared the link: only someone mapped to an active
    Close user (the owner mapping) gets Close data; a guest, a bot or anyone unmapped gets no
    preview. The lead is read with the sharer's own Close access (`clients.for_person`, per
    CLOSE_ACCESS), so a rep whose Close role sees only their leads previews only those; someone
    who cannot act yet gets the private prompt (`unfurl`'s `tell`: the listener's) and no
    preview. A lead Close does not have (or will not show them) gets a neutral "not found"; any
    other Close failure, no preview. Leads are remembered per view (the key's, or one
    person's), never across views.

    And on who will read it (`SlackGateway.preview_scope`, EXTERNAL_CHANNELS): the lead's name
    only where people of another organization read along, or where that is not known (a link
    still in the composer); no preview, and a private note to the sharer, where the bot
    declines (`off`). With ALLOWED_CHANNEL_IDS (`channels_restricted`), a link still in the
    composer, whose channel Slack does not say, gets the lead's name only.

    With `work_objects` (WORK_OBJECTS=on) a lead is shown as a Work Object card (chat.unfurl's
    `metadata`) under the same rules: its name, and its status and open count only where Close
    data may be shown; a lead Close does not have keeps the neutral Block Kit "not found".
    """

    def __init__(
        self,
        *,
        slack: SlackGateway,
        close: CloseClient,
        identity: Identity,
        close_app_url: str,
        clients: CloseClients | None = None,
        deliveries: Deliveries | None = None,
        channels_restricted: bool = False,
        work_objects: bool = False,
        lead_ttl: float = LEAD_TTL_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._slack = slack
        self._close = close
        self._clients = clients
        self._identity = identity
        self._close_app_url = close_app_url
        self._channels_restricted = channels_restricted
        self._work_objects = work_objects
        self._sleep = sleep
        self._clock = clock
        # None: Close says there is no such lead (kept too: asking again will not change it).
        # Keyed by (client view, lead id): one person's view is never another's preview.
        self.leads: SharedCache[tuple[str, str], LeadWithOpportunities | None] = SharedCache(
            lead_ttl
        )
        self._seen: SeenRecently[str] = SeenRecently(EVENT_MEMORY_SECONDS)
        self._deliveries = deliveries
        self._declined_told: SeenRecently[tuple[str, str]] = SeenRecently(DECLINED_NOTE_SECONDS)

    async def first_delivery(self, event_id: str | None) -> bool:
        """False for an event already taken, by this process or another sharing the database
        (Slack's retry of it): it is previewed once. When the database cannot say, this
        process's memory decides (a preview twice rather than none)."""
        if event_id is None:
            return True
        if not self._seen.first(event_id):
            return False
        if self._deliveries is None:
            return True
        try:
            return await self._deliveries.first(event_id, now=self._clock())
        except Exception as error:
            log.warning("Could not record link_shared %s: %s", event_id, type(error).__name__)
            return True

    async def unfurl(self, shared: LinkShared, *, tell: TellCannotAct | None = None) -> None:
        """Preview every Close lead link of `shared`, in one chat.unfurl; never raises.
        `tell`: how to tell a sharer who cannot act in Close yet."""
        try:
            await self._unfurl(shared, tell)
        except Exception:
            log.warning("Link preview failed", exc_info=True)

    async def _unfurl(self, shared: LinkShared, tell: TellCannotAct | None) -> None:
        leads = {
            url: lead_id
            for url in shared.urls
            if (lead_id := lead_id_in(url, self._close_app_url)) is not None
        }
        if not leads:
            return
        if not await self._may_see_close(shared.user):
            log.info("No preview of %d Close link(s) shared by %s", len(leads), shared.user)
            return
        # Everyone in the conversation reads a preview: who they are decides what it shows.
        scope = await self._scope(shared)
        if scope is PreviewScope.DECLINED:
            await self._tell_declined(shared)
            return
        close = await self._close_for(shared, tell)
        if close is None:
            return
        ids = sorted(set(leads.values()))
        found = dict(
            zip(ids, await asyncio.gather(*(self._lead(close, i) for i in ids)), strict=True)
        )
        unfurls, cards = self._previews(shared, leads, found, scope)
        if unfurls or cards:
            await self._send(shared, unfurls, cards, close_data=scope is PreviewScope.CLOSE_DATA)

    def _previews(
        self,
        shared: LinkShared,
        leads: dict[str, str],
        found: dict[str, tuple[bool, LeadWithOpportunities | None]],
        scope: PreviewScope,
    ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
        """(Block Kit unfurls keyed by the URL exactly as it was shared, Work Object cards):
        with WORK_OBJECTS=on a lead Close has is a card, else (and a lead it has not) blocks."""
        unfurls: dict[str, dict[str, Any]] = {}
        cards: list[dict[str, Any]] = []
        for url, lead_id in leads.items():
            answered, lead = found[lead_id]
            if not answered:
                continue
            if lead is not None and self._work_objects:
                card = lead_card(
                    lead,
                    app_unfurl_url=url,
                    close_app_url=self._close_app_url,
                    close_data=scope is PreviewScope.CLOSE_DATA,
                )
                cards.append(card)
            else:
                unfurls[url] = self._preview(shared, lead, scope)
        return unfurls, cards

    def _preview(
        self, shared: LinkShared, lead: LeadWithOpportunities | None, scope: PreviewScope
    ) -> dict[str, Any]:
        if lead is None:
            return lead_not_found()
        if scope is PreviewScope.CLOSE_DATA:
            return lead_preview(
                lead, close_app_url=self._close_app_url, thread_ts=shared.reply_thread()
            )
        note = COMPOSER_NAME_ONLY_TEXT if shared.in_composer else NAME_ONLY_TEXT
        return lead_name_only(lead, close_app_url=self._close_app_url, note=note)

    async def _scope(self, shared: LinkShared) -> PreviewScope:
        """What the preview may show, by who reads where it is (the gateway decides). A link
        still in the composer has no channel yet: the lead's name only, unless
        EXTERNAL_CHANNELS=allow; and with ALLOWED_CHANNEL_IDS, where it will be posted may
        not be a channel the bot is used in: the lead's name only whatever the policy."""
        channel = shared.conversation()
        scope = await self._slack.preview_scope(channel)
        if channel is None and self._channels_restricted and scope is PreviewScope.CLOSE_DATA:
            return PreviewScope.NAME_ONLY
        return scope

    async def _tell_declined(self, shared: LinkShared) -> None:
        """EXTERNAL_CHANNELS=off in a channel shared with another organization: no preview,
        and the sharer told so privately (once per channel for a while). Never raises."""
        channel, user = shared.conversation(), shared.user
        log.info("No preview in %s: shared with another organization (off)", channel)
        if channel is None or user is None or not self._declined_told.first((user, channel)):
            return
        try:
            await self._slack.post_ephemeral(
                channel, user, PREVIEW_DECLINED_TEXT, thread_ts=shared.thread_ts
            )
            return
        except SlackError as error:
            log.info("chat.postEphemeral of the declined note failed: %s", error.code)
        try:  # their DM with the app: nothing of Close in it
            message = Message(text=PREVIEW_DECLINED_TEXT, blocks=[])
            await self._slack.post_message(user, message, close_data=False)
        except SlackError as error:
            log.info("Could not tell %s the preview was declined: %s", user, error.code)

    async def _may_see_close(self, user_id: str | None) -> bool:
        if not user_id:
            return False
        try:
            mapping = await asyncio.wait_for(
                self._identity.close_user_for(user_id, remember_later=True),
                MAPPING_BUDGET_SECONDS,
            )
        except Exception as error:  # not knowing who shared means not showing Close data
            log.info("Could not tell who %s is in Close: %s", user_id, type(error).__name__)
            return False
        return mapping.mapped

    async def _close_for(
        self, shared: LinkShared, tell: TellCannotAct | None
    ) -> CloseClient | None:
        """The sharer's Close client; None (after telling them, when they cannot act yet)."""
        if self._clients is None or not self._clients.per_person or not shared.user:
            return self._close
        try:
            return await asyncio.wait_for(
                self._clients.for_person(shared.team_id, shared.user), MAPPING_BUDGET_SECONDS
            )
        except (CloseNotConnected, CloseAccessBroken) as refused:
            log.info("No preview for %s: %s", shared.user, type(refused).__name__)
            if tell is not None:
                await tell(shared, refused)
        except Exception as error:  # not knowing whose access means no Close data
            log.info("No preview for %s: %s", shared.user, type(error).__name__)
        return None

    async def _lead(
        self, close: CloseClient, lead_id: str
    ) -> tuple[bool, LeadWithOpportunities | None]:
        """(True, the lead or None when Close has no such lead), or (False, None) when Close
        could not say in time."""
        try:
            lead = await asyncio.wait_for(
                self.leads.get((close.view, lead_id), lambda: self._read(close, lead_id)),
                CLOSE_BUDGET_SECONDS,
            )
        except TimeoutError:
            log.info(
                "No preview of %s: Close did not answer within %ss", lead_id, CLOSE_BUDGET_SECONDS
            )
            return False, None
        except CloseAccessBroken as broken:
            log.info("No preview of %s: %s", lead_id, broken)
            if self._clients is not None:  # their connection broke just now: once per breakage
                await self._clients.tell_broken(None, broken.slack_user_id)
            return False, None
        except CloseError as error:
            log.info("No preview of %s: %s", lead_id, error)
            return False, None
        except Exception:  # an answer we cannot read: this lead goes without, the others not
            log.warning("No preview of %s", lead_id, exc_info=True)
            return False, None
        return True, lead

    async def _read(self, close: CloseClient, lead_id: str) -> LeadWithOpportunities | None:
        try:
            lead = await close.get_lead_with_opportunities(lead_id)
        except CloseNotFound:
            return None
        # Never another lead's data under this link (a merged lead, a misrouted answer).
        return lead if lead.id == lead_id else None

    async def _send(
        self,
        shared: LinkShared,
        unfurls: dict[str, dict[str, Any]],
        cards: list[dict[str, Any]],
        *,
        close_data: bool,
    ) -> None:
        target = shared.target()
        if target is None:
            log.info("link_shared without channel+ts or unfurl_id+source: nothing to unfurl")
            return
        for attempt in (1, 2):
            try:
                await self._slack.unfurl(
                    unfurls or None,
                    metadata={"entities": cards} if cards else None,
                    channel=target.get("channel"),
                    ts=target.get("ts"),
                    unfurl_id=target.get("unfurl_id"),
                    source=target.get("source"),
                    close_data=close_data,
                )
                return
            except RateLimited as error:
                if attempt == 1 and error.retry_after <= RATE_LIMIT_MAX_WAIT_SECONDS:
                    await self._sleep(error.retry_after)
                    continue
                # Only "not this time": no preview, nothing else to do.
                log.info("chat.unfurl: Slack says %s; no preview this time", error.code)
            except Gone as error:  # the message, or the link in it, is not ours to unfurl
                log.info("chat.unfurl: Slack says %s; no preview this time", error.code)
            except SlackError as error:
                log.warning("chat.unfurl refused: %s", error.code)
            return
