"""Slack's Work Objects, simulated: the `metadata` chat.unfurl accepts (cards), the flexpane a
person opens (`entity_details_requested`, with its own trigger_id) and `entity.presentDetails`.

Shapes and errors from docs.slack.dev ("Implementing Work Objects", the `entity_details_requested`
event, `entity.presentDetails` and its errors: `invalid_trigger_id`,
`entity_metadata_does_not_match_trigger`, `invalid_metadata`) and python-slack-sdk
(`slack_sdk/models/metadata`: the entity and custom-field types Slack knows).
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.metadata import CustomFieldType, EntityType

# entity.presentDetails' `error.status` values (docs.slack.dev).
ERROR_STATUSES = frozenset(
    {
        "restricted",
        "internal_error",
        "not_found",
        "custom",
        "custom_partial_view",
        "timeout",
        "edit_error",
    }
)
TRIGGER_TTL_SECONDS = 3.0


class Refused(Exception):
    """A Web API refusal of a Work Objects call: Slack's error code, and what was wrong."""

    def __init__(self, code: str, *problems: str) -> None:
        super().__init__(code)
        self.code = code
        self.problems = list(problems)


@dataclass
class Flexpane:
    """One person opening one card: the event Slack sends, and the app's answer to it."""

    trigger_id: str
    user_id: str
    entity: dict[str, Any]  # the card's entity as the app unfurled it
    channel: str | None
    message_ts: str | None
    thread_ts: str | None
    issued: float
    answer: dict[str, Any] | None = None  # the entity.presentDetails parameters

    def event(self, *, user_locale: str = "en-US") -> dict[str, Any]:
        """`entity_details_requested` as docs.slack.dev shows it."""
        url = str(self.entity.get("url", ""))
        event: dict[str, Any] = {
            "type": "entity_details_requested",
            "user": self.user_id,
            "external_ref": dict(self.entity.get("external_ref") or {}),
            "entity_url": url,
            "link": {"url": url, "domain": urllib.parse.urlsplit(url).hostname or ""},
            "app_unfurl_url": self.entity.get("app_unfurl_url"),
            "trigger_id": self.trigger_id,
            "user_locale": user_locale,
        }
        if self.channel and self.message_ts:  # opened from a posted message
            event.update(channel=self.channel, message_ts=self.message_ts)
            if self.thread_ts:
                event["thread_ts"] = self.thread_ts
        return event


@dataclass
class WorkObjects:
    """The flexpanes people opened (by trigger_id) and the app's answers."""

    trigger_ttl: float = TRIGGER_TTL_SECONDS
    flexpanes: dict[str, Flexpane] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def open(
        self,
        user_id: str,
        entity: dict[str, Any],
        *,
        channel: str | None = None,
        message_ts: str | None = None,
        thread_ts: str | None = None,
    ) -> Flexpane:
        """`user_id` clicks the card of `entity`: a fresh trigger_id for its flexpane."""
        trigger_id = f"{int(time.time())}{next(self._ids):04d}.{secrets.token_hex(8)}"
        pane = Flexpane(
            trigger_id, user_id, entity, channel, message_ts, thread_ts, time.monotonic()
        )
        self.flexpanes[trigger_id] = pane
        return pane

    def present(self, params: dict[str, Any]) -> dict[str, Any]:
        """entity.presentDetails: one answer per trigger, for the entity it was opened on."""
        pane = self.flexpanes.get(str(params.get("trigger_id", "")))
        if pane is None:
            raise Refused("invalid_trigger_id")
        if pane.answer is not None:
            raise Refused("exchanged_trigger_id")
        if time.monotonic() - pane.issued > self.trigger_ttl:
            raise Refused("expired_trigger_id")
        metadata, error = _object(params, "metadata"), _object(params, "error")
        auth = params.get("user_auth_required") in (True, 1, "1", "true")
        if sum(x is not None for x in (metadata, error)) + auth != 1:
            raise Refused("invalid_arguments", "one of metadata, error, user_auth_required")
        if metadata is not None:
            problems = entity_problems(metadata, unfurl=False)
            if problems:
                raise Refused("invalid_metadata", *problems)
            if metadata["external_ref"].get("id") != pane.entity["external_ref"].get("id"):
                raise Refused("entity_metadata_does_not_match_trigger")
        if error is not None and error.get("status") not in ERROR_STATUSES:
            raise Refused("invalid_arguments", f"error.status {error.get('status')!r}")
        if auth and not str(params.get("user_auth_url") or "").startswith("http"):
            raise Refused("invalid_arguments", "user_auth_url")
        pane.answer = {k: v for k, v in params.items() if k != "trigger_id"}
        return {"ok": True}


def unfurl_entities(metadata: Any, urls: list[str]) -> dict[str, dict[str, Any]]:
    """chat.unfurl's `metadata`: `{"entities": [...]}`, one per shared URL (its
    `app_unfurl_url`); URL -> entity, or Refused."""
    if isinstance(metadata, str | bytes):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            raise Refused("invalid_metadata", "not JSON") from None
    entities = metadata.get("entities") if isinstance(metadata, dict) else None
    if not isinstance(entities, list) or not entities:
        raise Refused("invalid_metadata", "/entities must be a non-empty array")
    found: dict[str, dict[str, Any]] = {}
    for i, entity in enumerate(entities):
        problems = entity_problems(entity, unfurl=True)
        if problems:
            raise Refused("invalid_metadata", *(f"/entities/{i}{p}" for p in problems))
        if entity["app_unfurl_url"] not in urls:
            raise Refused("cannot_unfurl_url")
        found[entity["app_unfurl_url"]] = entity
    return found


def entity_problems(entity: Any, *, unfurl: bool) -> list[str]:
    """What Slack would refuse in one entity (an unfurl's needs `app_unfurl_url`)."""
    if not isinstance(entity, dict):
        return [" must be an object"]
    problems: list[str] = []
    if entity.get("entity_type") not in EntityType:
        problems.append("/entity_type is not a Slack entity type")
    if not isinstance(entity.get("url"), str) or not entity["url"]:
        problems.append("/url is required")
    ref = entity.get("external_ref")
    if not isinstance(ref, dict) or not isinstance(ref.get("id"), str) or not ref["id"]:
        problems.append("/external_ref/id is required")
    if unfurl and not isinstance(entity.get("app_unfurl_url"), str):
        problems.append("/app_unfurl_url is required")
    payload = entity.get("entity_payload")
    attributes = payload.get("attributes") if isinstance(payload, dict) else None
    title = attributes.get("title") if isinstance(attributes, dict) else None
    if not isinstance(title, dict) or not isinstance(title.get("text"), str) or not title["text"]:
        problems.append("/entity_payload/attributes/title/text is required")
    fields = payload.get("custom_fields", []) if isinstance(payload, dict) else []
    problems += _custom_field_problems(fields)
    return problems


def _custom_field_problems(fields: Any) -> list[str]:
    if not isinstance(fields, list):
        return ["/entity_payload/custom_fields must be an array"]
    problems: list[str] = []
    for i, custom in enumerate(fields):
        where = f"/entity_payload/custom_fields/{i}"
        if not isinstance(custom, dict) or not all(
            isinstance(custom.get(k), str) and custom[k] for k in ("key", "label", "type")
        ):
            problems.append(f"{where} needs key, label and type")
        elif custom["type"] not in CustomFieldType:
            problems.append(f"{where}/type {custom['type']!r} is not a Slack field type")
        elif custom["type"] == "array" and not isinstance(custom.get("value"), list):
            problems.append(f"{where}/value must be an array")
    return problems


def _object(params: dict[str, Any], key: str) -> dict[str, Any] | None:
    """A JSON object parameter, sent as JSON or as a JSON string (form bodies)."""
    value = params.get(key)
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            raise Refused(
                "invalid_metadata" if key == "metadata" else "invalid_arguments"
            ) from None
    if value is not None and not isinstance(value, dict):
        raise Refused("invalid_metadata" if key == "metadata" else "invalid_arguments")
    return value
