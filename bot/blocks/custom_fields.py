"""Close opportunity custom fields as modal inputs (block id `custom.<cf_id>`), by field type."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from bot.blocks.options import Json, element, initial_among, input_block, option, static_select
from bot.blocks.text import OPTIONS_PER_SELECT, PLAIN_TEXT_INPUT, fit
from bot.close.models import Contact, CustomField, User

PREFIX = "custom."
HIDDEN_TYPES = frozenset({"hidden"})


def block_id(field: CustomField) -> str:
    return PREFIX + field.id


def shown(fields: Sequence[CustomField]) -> list[CustomField]:
    return [field for field in fields if field.type not in HIDDEN_TYPES]


def _element(
    field: CustomField,
    initial: Any,
    *,
    users: Sequence[User],
    contacts: Sequence[Contact],
) -> Json:
    action_id = block_id(field)
    kind = field.type
    if kind == "date":
        # Only a real YYYY-MM-DD: anything else (odd Close data, a forged payload) would make
        # Slack refuse the whole modal.
        return element("datepicker", action_id, initial_date=_iso_date(initial))
    if kind == "datetime":
        return element("datetimepicker", action_id, initial_date_time=_epoch(initial))
    if kind == "choices":
        return _choices_element(field, initial)
    if kind == "user" and users:
        if len(users) > OPTIONS_PER_SELECT:
            return element("external_select", action_id, min_query_length=1)
        options = [option(user.display_name, user.id) for user in users]
        return static_select(
            "static_select",
            action_id,
            "Pick a Close user",
            options,
            initial_option=initial_among(options, initial),
        )
    if kind == "contact" and contacts:
        options = [option(c.label, c.id) for c in contacts[:OPTIONS_PER_SELECT]]
        return static_select(
            "static_select",
            action_id,
            "Pick a contact",
            options,
            initial_option=initial_among(options, initial),
        )
    return element(
        "plain_text_input",
        action_id,
        "A number" if kind == "number" else None,
        initial_value=fit(str(initial), PLAIN_TEXT_INPUT) if initial not in (None, "") else None,
    )


def _iso_date(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        return None


def _epoch(value: Any) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return None
    return None


def _choices_element(field: CustomField, initial: Any) -> Json:
    action_id = block_id(field)
    if len(field.choices) > OPTIONS_PER_SELECT:
        # Slack allows 100 options: past that, the options come from our search endpoint.
        if field.accepts_multiple_values:
            picked = [v for v in initial if isinstance(v, str)] if isinstance(initial, list) else []
            return element(
                "multi_external_select",
                action_id,
                "Type to search",
                min_query_length=0,
                initial_options=[option(v, v) for v in picked][:OPTIONS_PER_SELECT] or None,
            )
        return element(
            "external_select",
            action_id,
            "Type to search",
            min_query_length=0,
            initial_option=option(str(initial), str(initial)) if isinstance(initial, str) else None,
        )
    options = [option(choice, choice) for choice in field.choices]
    if field.accepts_multiple_values:
        chosen = set(initial) if isinstance(initial, list) else set()
        return static_select(
            "multi_static_select",
            action_id,
            "Pick one or more",
            options,
            initial_options=[o for o in options if o["value"] in chosen] or None,
        )
    return static_select(
        "static_select",
        action_id,
        "Pick one",
        options,
        initial_option=initial_among(options, initial),
    )


def custom_field_blocks(
    fields: Sequence[CustomField],
    values: dict[str, Any],
    errors: dict[str, str],
    *,
    users: Sequence[User],
    contacts: Sequence[Contact],
) -> list[Json]:
    blocks: list[Json] = []
    for field in fields:
        if field.type == "contact" and not contacts:
            continue  # offered once a lead with contacts is chosen
        error = errors.get(block_id(field))
        blocks.append(
            input_block(
                block_id(field),
                field.name,
                _element(field, values.get(field.id), users=users, contacts=contacts),
                hint=f"⚠️ {error}" if error else field.description,
                optional=not field.required,
            )
        )
    return blocks


def search_options(field: CustomField, users: Sequence[User], typed: str) -> list[dict[str, Any]]:
    """Options for a field too big for a static select (over 100 choices or users), by search."""
    typed = typed.strip().casefold()
    if field.type == "user":
        pairs = [(u.display_name, u.id) for u in users]
    else:
        pairs = [(choice, choice) for choice in field.choices]
    matches = [(label, value) for label, value in pairs if typed in label.casefold()]
    return [option(label, value) for label, value in matches[:OPTIONS_PER_SELECT]]
