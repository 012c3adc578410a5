"""Plain-text renderings of Slack views and messages, for the demo's printout."""

from __future__ import annotations

import re
from typing import Any

_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]+)>")
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")


def _mrkdwn(text: str) -> str:
    text = _LINK.sub(r"\2 (\1)", text)
    text = _MENTION.sub(r"@\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _text(obj: object) -> str:
    if isinstance(obj, dict):
        return _mrkdwn(str(obj.get("text", "")))
    return ""


def _initial(element: dict[str, Any]) -> str:
    for key in ("initial_value", "initial_date", "initial_user"):
        if element.get(key):
            return str(element[key])
    if isinstance(element.get("initial_option"), dict):
        return _text(element["initial_option"].get("text"))
    return "—"


def render_view(view: dict[str, Any]) -> list[str]:
    lines = [f"┌ {_text(view.get('title'))} ".ljust(60, "─")]
    for block in view.get("blocks", []):
        kind = block.get("type")
        if kind == "input":
            element = block.get("element", {})
            hint = f"  ({_text(block['hint'])})" if block.get("hint") else ""
            lines.append(f"│ {_text(block.get('label')):<20} {_initial(element)}{hint}")
        elif kind == "context":
            lines.extend(f"│ {_text(e)}" for e in block.get("elements", []))
        elif kind == "section":
            lines.append(f"│ {_text(block.get('text'))}")
    lines.append(f"└ [{_text(view.get('close'))}]  [{_text(view.get('submit'))}] ".ljust(60, "─"))
    return lines


def render_message(message: dict[str, Any], *, indent: str = "") -> list[str]:
    lines: list[str] = []
    for block in message.get("blocks") or []:
        kind = block.get("type")
        if kind == "section":
            if block.get("text"):
                lines.extend(_text(block["text"]).splitlines())
            for field in block.get("fields", []):
                lines.append("  ".join(_text(field).splitlines()))
        elif kind == "context":
            lines.extend(_text(e) for e in block.get("elements", []))
        elif kind == "actions":
            for element in block.get("elements", []):
                url = f" → {element['url']}" if element.get("url") else ""
                lines.append(f"[{_text(element.get('text'))}]{url}")
    if not lines:
        lines = [str(message.get("text", ""))]
    return [indent + line for line in lines]
