"""Work Object flexpanes (WORK_OBJECTS=on): a person opens a lead's card (or an opportunity's,
on the confirmation's summary: bot/listeners/opportunity_pane.py), Slack sends
`entity_details_requested`, and `entity.presentDetails` answers with the lead as *that person*
sees it in Close — through their own access (`close_for`, per CLOSE_ACCESS) — or why not:
`user_auth_required` with the *Connect Close* URL (not connected under `personal`, or a broken
connection), error `restricted` (the org's key, for someone who is not a Close user),
`not_found`, `timeout` or `internal_error`.

The event's shape: docs.slack.dev `entity_details_requested` (user, trigger_id, external_ref,
entity_url, app_unfurl_url, link, user_locale, channel/message_ts when opened from a message).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from slack_bolt.async_app import AsyncApp

from bot.blocks.entities import LEAD_REF_TYPE, lead_details
from bot.close.client import CloseClient
from bot.close.errors import CloseError, CloseNotFound
from bot.listeners.modal_flow import lead_contacts
from bot.listeners.opportunity_pane import opportunity_pane, opportunity_ref
from bot.listeners.payload import str_at
from bot.listeners.person import CannotAct, close_for
from bot.services import Services
from bot.slack.errors import SlackError

log = logging.getLogger(__name__)

# Slack's trigger_id lives a few seconds: the answer, whatever it is, must land within them.
MAPPING_BUDGET_SECONDS = 1.0
CLOSE_BUDGET_SECONDS = 2.0

DETAILS_REQUESTED = "entity_details_requested"
RESTRICTED = {"status": "restricted"}
NOT_FOUND = {"status": "not_found"}
TIMEOUT = {"status": "timeout"}
INTERNAL_ERROR = {"status": "internal_error"}


class DetailsRequested(BaseModel):
    """An `entity_details_requested` event (Slack's own field names), read defensively."""

    user: str
    trigger_id: str
    external_ref_id: str | None = None
    external_ref_type: str | None = None
    team_id: str | None = None

    @classmethod
    def from_event(cls, event: dict[str, Any], team_id: str | None) -> DetailsRequested | None:
        user, trigger_id = str_at(event, "user"), str_at(event, "trigger_id")
        if not user or not trigger_id:
            return None
        return cls(
            user=user,
            trigger_id=trigger_id,
            external_ref_id=str_at(event, "external_ref", "id"),
            external_ref_type=str_at(event, "external_ref", "type"),
            team_id=team_id,
        )

    @property
    def lead_id(self) -> str | None:
        """The lead of a lead card (external_ref type `lead`, or an untyped `lead_…` id)."""
        ref, kind = self.external_ref_id, self.external_ref_type
        if ref and (kind == LEAD_REF_TYPE or (kind is None and ref.startswith("lead_"))):
            return ref
        return None


@dataclass(frozen=True)
class PaneAnswer:
    """What entity.presentDetails says: the entity, a sign-in to do first, or an error."""

    metadata: dict[str, Any] | None = None
    user_auth_url: str | None = None
    error: dict[str, Any] | None = None


async def present(services: Services, asked: DetailsRequested) -> None:
    """Answer the flexpane (the event was acked already); never raises."""
    try:
        answer = await details_for(services, asked)
    except Exception:
        log.warning("Flexpane of %s failed", asked.external_ref_id, exc_info=True)
        answer = PaneAnswer(error=INTERNAL_ERROR)
    try:
        await services.slack_gateway.present_details(
            asked.trigger_id,
            metadata=answer.metadata,
            user_auth_url=answer.user_auth_url,
            error=answer.error,
        )
    except SlackError as error:
        log.info("entity.presentDetails refused: %s", error.code)
    except Exception as error:  # Slack not answering: the pane shows its own error
        log.info("entity.presentDetails failed: %s", type(error).__name__)


async def details_for(services: Services, asked: DetailsRequested) -> PaneAnswer:
    """The lead (or the opportunity) as `asked.user` may see it in Close, or why not."""
    lead_id = asked.lead_id
    opportunity_id = opportunity_ref(asked.external_ref_id, asked.external_ref_type)
    if lead_id is None and opportunity_id is None:
        return PaneAnswer(error=NOT_FOUND)
    try:
        close = await close_for(services, asked.user, asked.team_id)
    except CannotAct:
        return await _connect_first(services, asked)
    except TimeoutError:
        return PaneAnswer(error=TIMEOUT)
    if close.acts_with_key:
        # The org's key would show anyone everything: as for previews and find, only to
        # someone who maps to an active Close user.
        refusal = await _not_a_close_user(services, asked.user)
        if refusal is not None:
            return PaneAnswer(error=refusal)
    if opportunity_id is not None:
        return await _read_opportunity(services, close, opportunity_id, asked)
    assert lead_id is not None
    return await _read(services, close, lead_id, asked)


async def _read_opportunity(
    services: Services, close: CloseClient, opportunity_id: str, asked: DetailsRequested
) -> PaneAnswer:
    try:
        entity, error = await opportunity_pane(services, close, opportunity_id, asked.user)
    except CannotAct:  # their connection broke just now
        return await _connect_first(services, asked)
    return PaneAnswer(metadata=entity, error=error)


async def _connect_first(services: Services, asked: DetailsRequested) -> PaneAnswer:
    """`user_auth_required`, with a *Connect Close* link minted for this person."""
    access = services.access
    url = await access.connect_link(asked.team_id or "", asked.user) if access else None
    return PaneAnswer(user_auth_url=url) if url else PaneAnswer(error=RESTRICTED)


async def _not_a_close_user(services: Services, user_id: str) -> dict[str, Any] | None:
    try:
        mapping = await asyncio.wait_for(
            services.identity.close_user_for(user_id, remember_later=True),
            MAPPING_BUDGET_SECONDS,
        )
    except Exception as error:  # not knowing who asks means not showing Close data
        log.info("Flexpane: could not tell who %s is in Close: %s", user_id, type(error).__name__)
        return TIMEOUT if isinstance(error, TimeoutError) else INTERNAL_ERROR
    return None if mapping.mapped else RESTRICTED


async def _read(
    services: Services, close: CloseClient, lead_id: str, asked: DetailsRequested
) -> PaneAnswer:
    try:
        lead, contacts = await asyncio.wait_for(
            asyncio.gather(
                close.get_lead_with_opportunities(lead_id),
                lead_contacts(services, lead_id, close=close),
            ),
            CLOSE_BUDGET_SECONDS,
        )
    except CannotAct:  # their connection broke just now
        return await _connect_first(services, asked)
    except CloseNotFound:  # no such lead, or not one Close shows this person
        return PaneAnswer(error=NOT_FOUND)
    except TimeoutError:
        log.info("Flexpane of %s: Close did not answer in %ss", lead_id, CLOSE_BUDGET_SECONDS)
        return PaneAnswer(error=TIMEOUT)
    except CloseError as error:
        log.info("Flexpane of %s: %s", lead_id, error)
        return PaneAnswer(error=INTERNAL_ERROR)
    if lead.id != lead_id:  # never another lead's data under this card (a merged lead)
        return PaneAnswer(error=NOT_FOUND)
    details = lead_details(lead, contacts, close_app_url=services.settings.close_app_url)
    return PaneAnswer(metadata=details)


async def refuse_details(services: Services, body: dict[str, Any]) -> None:
    """The pane of someone the bot is not for (the allow-lists, another organization): error
    `restricted` rather than a pane left loading. Never raises."""
    trigger_id = str_at(body, "event", "trigger_id")
    if not trigger_id:
        return
    try:
        await services.slack_gateway.present_details(trigger_id, error=RESTRICTED)
    except Exception as error:
        log.info("entity.presentDetails (restricted) failed: %s", type(error).__name__)


def register(app: AsyncApp, services: Services) -> None:
    @app.event(DETAILS_REQUESTED)
    async def entity_details_requested(body: dict[str, Any], event: dict[str, Any]) -> None:
        # Bolt acked before this runs (events are acknowledged first): Close's time is ours.
        asked = DetailsRequested.from_event(event, str_at(body, "team_id"))
        if asked is None:
            log.info("entity_details_requested without user or trigger_id: nothing to answer")
            return
        await present(services, asked)
