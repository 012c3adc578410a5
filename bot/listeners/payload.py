"""Reading Slack payloads defensively: a missing or odd-shaped part reads as empty, never raises."""

from __future__ import annotations

from typing import Any


def dict_at(container: object, *keys: str) -> dict[str, Any]:
    """`container[k1][k2]…` when every step is a dict, else {}."""
    current: object = container
    for key in keys:
        if not isinstance(current, dict):
            return {}
        current = current.get(key)
    return current if isinstance(current, dict) else {}


def str_at(container: object, *keys: str) -> str | None:
    """The string at `container[k1]…[kn]`, or None."""
    if not keys:
        return None
    parent = dict_at(container, *keys[:-1])
    value = parent.get(keys[-1])
    return value if isinstance(value, str) and value else None
