"""Options for the modal's external selects: the lead typeahead."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.blocks.custom_fields import PREFIX as CUSTOM_PREFIX
from bot.blocks.custom_fields import search_options
from bot.blocks.modal import lead_options
from bot.deals.prefill import existing_lead_option
from bot.listeners.payload import str_at
from bot.services import Services


def register(app: AsyncApp, services: Services) -> None:
    @app.options("lead")
    async def lead_suggestions(ack: AsyncAck, body: dict[str, Any]) -> None:
        typed = (str_at(body, "value") or "")[:200]
        leads = await services.lead_search.search(typed)
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
