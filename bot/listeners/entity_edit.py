"""Saving an opportunity edited in its Work Object flexpane: a `view_submission` whose
`view.type` is `entity_detail` (matched on the type: its callback_id is not ours to choose).

Acked within Slack's 3 s — with `{"response_action": "errors"}` under each bad field (the
modal's rules) — then, as the person (their own Close access, like Edit), the change is PUT to
Close, told in the deal's thread like any Edit, and the pane shows the opportunity as saved
(`entity.presentDetails` with the submission's trigger_id), or error `edit_error` saying why.
Only those who may edit the deal (who logged it, its owner, admins) can; the others are told
so in the pane. The card is the confirmation's summary's (bot/blocks/opportunity_entity.py).

The submission's shape is SLACK.md's reading of docs.slack.dev ("Implementing Work Objects"):
each edited field at `view.state.values[<key>]["<key>.input"]`, and the entity's
`external_ref`, `entity_url`, `channel`, `message_ts`. No captured payload was found to check
it against, so it is read defensively (from `view`, else the payload's top level).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.blocks.opportunity_entity import EDITABLE, opportunity_entity
from bot.close.errors import CloseError
from bot.deals.changes import Changes, close_said
from bot.deals.confirmation import Confirmation
from bot.deals.entity_edit import EntityEdit, read_entity_edit
from bot.deals.models import ReplyTarget, Submission
from bot.listeners.opportunity_pane import pipeline_statuses
from bot.listeners.payload import dict_at, str_at
from bot.listeners.person import CannotAct
from bot.services import Services
from bot.slack.errors import SlackError

log = logging.getLogger(__name__)

ENTITY_DETAIL = "entity_detail"
PROFILE_BUDGET_SECONDS = 1.0
NOT_LOGGED_HERE = "This opportunity was not logged from Slack: change it in Close."
NOT_YOURS = (
    "Only the person who logged this opportunity, its owner and admins can change it from "
    "Slack. Ask one of them, or change it in Close."
)


def edited_values(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Field key -> its input element's state, for the editable fields that came."""
    values = dict_at(payload, "view", "state", "values")
    found: dict[str, dict[str, Any]] = {}
    for key in EDITABLE:
        state = dict_at(values, key, f"{key}.input")
        if state:
            found[key] = state
    return found


def edited_opportunity(payload: dict[str, Any]) -> str | None:
    """The opportunity id of the entity being edited (its `external_ref`)."""
    return str_at(payload, "view", "external_ref", "id") or str_at(payload, "external_ref", "id")


async def submit(services: Services, ack: AsyncAck, body: dict[str, Any]) -> None:
    """Check, ack (errors under the fields, or nothing), then save after the ack."""
    values = edited_values(body)
    first = next(iter(values), EDITABLE[0])
    opportunity_id = edited_opportunity(body)
    submission = await services.store.by_opportunity(opportunity_id) if opportunity_id else None
    if submission is None or submission.opportunity_id is None:
        await ack(response_action="errors", errors={first: NOT_LOGGED_HERE})
        return
    actor = str_at(body, "user", "id") or ""
    edit = read_entity_edit(values, services.catalog, locale=await _locale(services, actor))
    if edit.errors:
        await ack(response_action="errors", errors=edit.errors)
        return
    await ack()
    trigger_id = str_at(body, "trigger_id")
    await save(services, actor, submission, edit, trigger_id=trigger_id)


async def save(
    services: Services,
    actor: str,
    submission: Submission,
    edit: EntityEdit,
    *,
    trigger_id: str | None,
) -> None:
    """PUT as `actor`, tell it in the deal's thread, show the pane as saved. Never raises."""
    changes = services.confirmation_actions
    answer: dict[str, Any]
    try:
        answer = await _saved(services, changes, actor, submission, edit)
    except CannotAct as refused:
        answer = _edit_error(f"Close did not save it: {close_said(refused)}.")
    except CloseError as error:
        log.info("Flexpane edit of %s failed: %s", submission.opportunity_id, error)
        answer = _edit_error(f"Close did not save it: {close_said(error)}")
    except Exception:
        log.warning("Flexpane edit of %s failed", submission.opportunity_id, exc_info=True)
        answer = _edit_error("Something went wrong: nothing was saved. Please try again.")
    if trigger_id is None:
        return
    try:
        await services.slack_gateway.present_details(trigger_id, **answer)
    except SlackError as error:
        log.info("entity.presentDetails after an edit refused: %s", error.code)
    except Exception as error:
        log.info("entity.presentDetails after an edit failed: %s", type(error).__name__)


async def _saved(
    services: Services,
    changes: Changes,
    actor: str,
    submission: Submission,
    edit: EntityEdit,
) -> dict[str, Any]:
    if not await changes.allowed(actor, submission):
        return _edit_error(NOT_YOURS)
    before, after = await changes.put(actor, submission, edit.body)
    confirmation = Confirmation.of(submission)
    await changes.publish(
        ReplyTarget(user_id=actor), submission, confirmation, before, after, "edited it"
    )
    entity = opportunity_entity(
        after,
        pipeline_statuses(services.catalog, after),
        close_app_url=services.settings.close_app_url,
        editable=True,
    )
    return {"metadata": entity}


def _edit_error(message: str) -> dict[str, Any]:
    return {"error": {"status": "edit_error", "custom_message": message}}


async def _locale(services: Services, user_id: str) -> str:
    """The person's Slack locale (numbers are read as they write them); en-US when unknown."""
    try:
        profile = await asyncio.wait_for(services.identity.profile(user_id), PROFILE_BUDGET_SECONDS)
    except Exception as error:
        log.info("Flexpane edit: no profile of %s (%s)", user_id, type(error).__name__)
        return "en-US"
    return profile.locale if profile is not None else "en-US"


async def _entity_detail(body: dict[str, Any]) -> bool:
    return str_at(body, "view", "type") == ENTITY_DETAIL


async def _callback_id_for_bolt(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> None:
    """Bolt routes a view_submission to `app.view` listeners only when its view has a
    `callback_id` key (slack_bolt/request/payload_utils.py `is_view_submission`: `"callback_id"
    in body["view"]`, used by listener_matcher/builtins.py `view_submission`). A flexpane's
    `entity_detail` view is Slack's, not a modal of ours: should it come without one, it gets an
    empty one here, so the listener below — matched on `view.type` — sees it."""
    view = body.get("view") if body.get("type") == "view_submission" else None
    if isinstance(view, dict) and view.get("type") == ENTITY_DETAIL:
        view.setdefault("callback_id", "")
    await next()


def register(app: AsyncApp, services: Services) -> None:
    app.middleware(_callback_id_for_bolt)

    @app.view(re.compile(".*"), matchers=[_entity_detail])
    async def entity_edited(ack: AsyncAck, body: dict[str, Any]) -> None:
        await submit(services, ack, body)
