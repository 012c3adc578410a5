"""The flexpane of an opportunity's card (the confirmation's summary, WORK_OBJECTS=on): the
opportunity as the person who opened it reads it in Close (their own access, decided by
bot/listeners/flexpane.py), its four fields open to editing when they may edit the deal
(`Changes.allowed`: who logged it, its owner, admins), read-only otherwise. Saved by the
`entity_detail` submission (bot/listeners/entity_edit.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.blocks.opportunity_entity import OPPORTUNITY_REF_TYPE, opportunity_entity
from bot.close.catalog import Catalog
from bot.close.client import CloseClient
from bot.close.errors import CloseError, CloseNotFound
from bot.close.models import Opportunity, Status
from bot.listeners.person import CannotAct
from bot.services import Services

log = logging.getLogger(__name__)

# Within the trigger's few seconds: Close's read, then who may edit (a profile, a mapping).
READ_BUDGET_SECONDS = 2.0
MAY_EDIT_BUDGET_SECONDS = 1.0

NOT_FOUND = {"status": "not_found"}
TIMEOUT = {"status": "timeout"}
INTERNAL_ERROR = {"status": "internal_error"}


def opportunity_ref(ref_id: str | None, ref_type: str | None) -> str | None:
    """The opportunity of an opportunity card (external_ref type `opportunity`, or an untyped
    `oppo_…` id)."""
    if ref_id and (
        ref_type == OPPORTUNITY_REF_TYPE or (ref_type is None and ref_id.startswith("oppo_"))
    ):
        return ref_id
    return None


def pipeline_statuses(catalog: Catalog, opportunity: Opportunity) -> list[Status]:
    """The statuses the opportunity may move to: its pipeline's."""
    pipeline = catalog.pipeline_for_status(opportunity.status_id)
    for group, statuses in catalog.statuses_by_pipeline():
        if pipeline is None or group.id == pipeline.id:
            return statuses
    return []


async def opportunity_pane(
    services: Services, close: CloseClient, opportunity_id: str, user_id: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the entity, None) or (None, the error status) for `user_id`'s flexpane. Raises what
    `close` raises for a connection that broke (CannotAct): the caller asks to connect."""
    try:
        opportunity = await asyncio.wait_for(
            close.get_opportunity(opportunity_id), READ_BUDGET_SECONDS
        )
    except CannotAct:
        raise  # their connection broke just now: the caller asks them to connect
    except CloseNotFound:  # deleted, or not one Close shows this person
        return None, NOT_FOUND
    except TimeoutError:
        log.info("Flexpane of %s: Close did not answer in %ss", opportunity_id, READ_BUDGET_SECONDS)
        return None, TIMEOUT
    except CloseError as error:
        log.info("Flexpane of %s: %s", opportunity_id, error)
        return None, INTERNAL_ERROR
    if opportunity.id != opportunity_id:
        return None, NOT_FOUND
    editable = await _may_edit(services, user_id, opportunity)
    entity = opportunity_entity(
        opportunity,
        pipeline_statuses(services.catalog, opportunity) if editable else [],
        close_app_url=services.settings.close_app_url,
        editable=editable,
    )
    return entity, None


async def _may_edit(services: Services, user_id: str, opportunity: Opportunity) -> bool:
    """Whether `user_id` may edit this deal from Slack: one logged from Slack, and theirs to
    edit. Not knowing in time means read-only (the save checks again)."""
    try:
        submission = await services.store.by_opportunity(opportunity.id)
        if submission is None:
            return False
        return await asyncio.wait_for(
            services.confirmation_actions.allowed(user_id, submission, opportunity),
            MAY_EDIT_BUDGET_SECONDS,
        )
    except Exception as error:
        log.info("Flexpane: may %s edit %s? %s", user_id, opportunity.id, type(error).__name__)
        return False
