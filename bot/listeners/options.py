"""Options for the modal's external selects: the lead typeahead."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.blocks.custom_fields import PREFIX as CUSTOM_PREFIX
from bot.blocks.custom_fields import search_options
from bot.blocks.modal import lead_options
from bot.deals.prefill import existing_lead_option
from bot.listeners.payload import str_at
from bot.listeners.person import (
    TYPEAHEAD_STANDING_SECONDS,
    CannotAct,
    TypingNudges,
    close_for,
)
from bot.services import Services
from bot.tasks import spawn

log = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    nudges = TypingNudges()

    @app.options("lead")
    async def lead_suggestions(ack: AsyncAck, body: dict[str, Any]) -> None:
        """Leads as the person typing may see them (their own Close access, per CLOSE_ACCESS):
        someone who cannot act gets no options and, once, the *Connect Close* prompt."""
        typed = (str_at(body, "value") or "")[:200]
        user_id = str_at(body, "user", "id") or ""
        team_id = str_at(body, "team", "id") or str_at(body, "user", "team_id")
        started = time.monotonic()
        try:
            close = await close_for(services, user_id, team_id, budget=TYPEAHEAD_STANDING_SECONDS)
        except CannotAct as refused:
            await ack(options=[])
            spawn(nudges.tell(services, team_id, user_id, refused), name="connect-nudge")
            return
        except TimeoutError:
            log.info("Could not read the Close connection of %s in time", user_id)
            await ack(options=[])
            return
        spent = time.monotonic() - started  # the lookup's time comes out of the search's budget
        leads = await services.lead_search.search(typed, close=close, spent=spent)
        await ack(options=lead_options([existing_lead_option(lead) for lead in leads], typed))

    @app.options(re.compile(r"^custom\."))
    async def custom_field_suggestions(ack: AsyncAck, body: dict[str, Any]) -> None:
        action_id = str_at(body, "action_id") or ""
        field = services.catalog.custom_field(action_id.removeprefix(CUSTOM_PREFIX))
        if field is None:
            await ack(options=[])
            return
        typed = (str_at(body, "value") or "")[:200]
        await ack(options=search_options(field, services.catalog.active_users, typed))
