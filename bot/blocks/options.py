"""Block Kit pieces for input forms as plain dicts, trimmed to Slack's limits: the one place they are built.

Why plain dicts: `slack_sdk.models` validates every object on every `to_dict()`, which was
~1 ms per modal build and 16% of the bot's CPU under load. Here each constructor trims
its text to the limit in `bot.blocks.text` (or takes only constants), and caps lists, so
what comes out is valid by construction; tests/test_limits.py and tests/test_modal_build.py
check the built views with `slack_sdk.models` and the Slack simulator's Block Kit rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.blocks.text import (
    HINT,
    LABEL,
    OPTION_TEXT,
    OPTION_VALUE,
    OPTIONS_PER_SELECT,
    PLACEHOLDER,
    fit,
)

Json = dict[str, Any]
# Slack caps block_id and action_id at 255 characters.
ID_LIMIT = 255


def plain_text(text: str, limit: int) -> Json:
    """A `plain_text` object with emoji shortcodes on, as slack_sdk renders labels and hints."""
    return {"type": "plain_text", "text": fit(text, limit), "emoji": True}


def option(label: str, value: str) -> Json:
    return {
        "text": {"type": "plain_text", "text": fit(label, OPTION_TEXT)},
        "value": value[:OPTION_VALUE],
    }


def option_group(label: str, options: list[Json]) -> Json:
    return {"label": plain_text(label, OPTION_TEXT), "options": options[:OPTIONS_PER_SELECT]}


def element(kind: str, action_id: str, placeholder: str | None = None, **fields: Any) -> Json:
    """An interactive element; fields that are None are left out, as Slack wants."""
    found: Json = {"type": kind, "action_id": action_id[:ID_LIMIT]}
    if placeholder is not None:
        found["placeholder"] = plain_text(placeholder, PLACEHOLDER)
    for key, value in fields.items():
        if value is not None:
            found[key] = value
    return found


def static_select(
    kind: str,
    action_id: str,
    placeholder: str | None,
    options: Iterable[Json],
    **fields: Any,
) -> Json:
    """A `static_select`/`multi_static_select` of at most 100 options."""
    return element(
        kind, action_id, placeholder, options=list(options)[:OPTIONS_PER_SELECT], **fields
    )


def initial_among(options: list[Json], value: object) -> Json | None:
    """The option whose value is `value` (the very dict, as Slack requires it to match)."""
    return next((o for o in options if o["value"] == value), None)


def input_block(
    block_id: str,
    label: str,
    element: Json,
    *,
    hint: str | None = None,
    optional: bool = True,
    dispatch_action: bool | None = None,
) -> Json:
    found: Json = {
        "type": "input",
        "block_id": block_id[:ID_LIMIT],
        "label": plain_text(label, LABEL),
        "element": element,
        "optional": optional,
    }
    if hint:
        found["hint"] = plain_text(hint, HINT)
    if dispatch_action is not None:
        found["dispatch_action"] = dispatch_action
    return found
