"""An opportunity's edit from its Work Object flexpane, pure: the edited fields' states (read
from the `entity_detail` submission by bot/listeners/entity_edit.py) -> the PUT body Close
takes, or a message per field key for `{"response_action": "errors"}`. The rules are the
modal's (bot/deals/fields.py); an element's state is read as Block Kit's (`selected_option`,
`selected_date`, `value`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.close.catalog import Catalog
from bot.deals.fields import Invalid, read_confidence, read_date, read_typed_value

NOT_A_STATUS = "Pick a status from the list."


@dataclass(frozen=True)
class EntityEdit:
    """What to PUT (only the fields that came), or what to say under which field."""

    body: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def read_entity_edit(
    values: dict[str, dict[str, Any]], catalog: Catalog, *, locale: str
) -> EntityEdit:
    """The modal's rules on the flexpane's four fields; a field left empty is left as it is."""
    body: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, state in values.items():
        typed = _typed(state)
        if not typed:
            continue
        if key == "status":
            status = catalog.status(typed)
            if status is None:
                errors[key] = NOT_A_STATUS
                continue
            body["status_id"] = status.id
            pipeline = catalog.pipeline_for_status(status.id)
            if pipeline is not None:
                body["pipeline_id"] = pipeline.id
        elif key == "value":
            money = read_typed_value(typed, locale=locale)
            if isinstance(money, Invalid):
                errors[key] = money.in_modal
                continue
            body["value"] = money.cents
            if money.period:
                body["value_period"] = money.period
        else:
            read = read_confidence(typed) if key == "confidence" else read_date(typed)
            if isinstance(read, Invalid):
                errors[key] = read.in_modal
                continue
            body[key] = read if isinstance(read, int) else read.isoformat()
    return EntityEdit(body=body if not errors else {}, errors=errors)


def _typed(state: dict[str, Any]) -> str:
    """What the element holds: a select's option, a date picker's date, an input's text."""
    for path in (("selected_option", "value"), ("selected_date",), ("value",)):
        found = state
        for step in path:
            found = found.get(step) if isinstance(found, dict) else None  # type: ignore[assignment]
        if isinstance(found, str | int) and not isinstance(found, bool):
            return str(found).strip()
    return ""
