"""Test helpers: the mrkdwn a Slack client would render, and every Block Kit limit, in one place."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from sandbox import blockkit

# What a hostile user (or a Close record) can type; none may reach Slack as markup.
HOSTILE = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U0BOB>",
    "<@U0BOB|bob>",
    "<#C0EVIL>",
    "<!subteam^S0TEAM>",
    "<https://evil.example/phish|Open in Close>",
    "<mailto:ceo@evil.example|CEO>",
]
# Substrings that, raw in mrkdwn, would ping, link or mention.
DANGEROUS = ["<!", "<@U0BOB", "<#C0EVIL", "<https://evil", "<mailto:"]


def mrkdwn_texts(obj: Any, *, top_level_text: bool = True) -> Iterator[str]:
    """Every string Slack parses as mrkdwn: mrkdwn text objects and a message's `text`."""
    if isinstance(obj, dict):
        if top_level_text and isinstance(obj.get("text"), str):
            yield obj["text"]  # a message's fallback text is mrkdwn
        for key, value in obj.items():
            if key == "text" and isinstance(value, dict):
                if value.get("type") == "mrkdwn" and isinstance(value.get("text"), str):
                    yield value["text"]
            elif key in ("elements", "fields") and isinstance(value, list):
                for item in value:
                    if isinstance(item, dict) and item.get("type") == "mrkdwn":
                        yield str(item.get("text", ""))
                    else:
                        yield from mrkdwn_texts(item, top_level_text=False)
            elif isinstance(value, dict | list):
                yield from mrkdwn_texts(value, top_level_text=False)
    elif isinstance(obj, list):
        for item in obj:
            yield from mrkdwn_texts(item, top_level_text=False)


def injected(obj: Any) -> list[str]:
    """The mrkdwn strings of `obj` that carry a raw mention, broadcast or foreign link."""
    return [text for text in mrkdwn_texts(obj) if any(bad in text for bad in DANGEROUS)]


def limit_problems(obj: dict[str, Any], *, surface: blockkit.Surface) -> list[str]:
    """Every limit `obj` breaks, by the Slack simulator's checker and by slack_sdk's models."""
    found = blockkit.problems(obj, surface=surface)
    try:
        if surface == "message":
            for block in Block.parse_all(obj.get("blocks") or []):
                if block is not None:
                    block.validate_json()
        else:
            view = View(**{k: v for k, v in obj.items() if k not in ("id", "hash", "state")})
            view.validate_json()
    except Exception as error:  # slack_sdk raises SlackObjectFormationError and friends
        found.append(f"slack_sdk: {error}")
    if surface == "message" and len(json.dumps(obj.get("blocks") or [])) > 50_000:
        found.append("blocks JSON over 50 KB")
    return found
