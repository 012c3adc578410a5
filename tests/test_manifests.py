"""Our Slack app manifests validate against Slack's published manifest JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from bot.settings import Settings
from bot.unfurl.links import unfurl_domain
from tests.conftest import SPECS

MANIFESTS = sorted((Path(__file__).resolve().parents[1] / "manifests").glob("*.json"))
SCHEMA_REFS = {
    "https://raw.githubusercontent.com/slackapi/manifest-schema/v0.5.0/schemas/manifest.schema.1.0.0.json": "manifest.schema.1.0.0.json",
    "https://raw.githubusercontent.com/slackapi/manifest-schema/v0.5.0/schemas/manifest.schema.2.0.0.json": "manifest.schema.2.0.0.json",
}


# `features.rich_previews` (Work Objects) is newer than Slack's published manifest schema: the
# latest release of slackapi/manifest-schema (v0.5.0, our copy) has no such property and its
# `features` allows no other. Its shape, as docs.slack.dev's manifest reference and Slack's
# bolt-python-search-template manifest give it, is added here, as strict as the rest, rather
# than editing the copy of Slack's files.
ENTITY_TYPES = [
    "slack#/entities/task",
    "slack#/entities/file",
    "slack#/entities/item",
    "slack#/entities/incident",
    "slack#/entities/content_item",
]
RICH_PREVIEWS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "is_active": {"type": "boolean"},
        "entity_types": {
            "type": "array",
            "items": {"type": "string", "enum": ENTITY_TYPES},
            "minItems": 1,
            "uniqueItems": True,
        },
    },
    "required": ["entity_types"],
}


def with_rich_previews(schema: dict[str, Any]) -> dict[str, Any]:
    features = schema["definitions"]["app-manifests.v1.features.schema"]
    assert "rich_previews" not in features["properties"], "Slack's schema has it now: drop ours"
    features["properties"]["rich_previews"] = RICH_PREVIEWS
    return schema


def validator() -> jsonschema.Draft7Validator:
    folder = SPECS / "slack-manifest-schema"
    root = json.loads((folder / "manifest.schema.json").read_text())
    registry: Registry = Registry()
    for url, name in SCHEMA_REFS.items():
        schema = with_rich_previews(json.loads((folder / name).read_text()))
        registry = registry.with_resource(url, Resource.from_contents(schema))
    return jsonschema.Draft7Validator(root, registry=registry)


def test_there_are_socket_and_http_manifests() -> None:
    assert {m.name for m in MANIFESTS} == {"http.json", "socket.json"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_against_slack_schema(path: Path) -> None:
    manifest = json.loads(path.read_text())
    errors = sorted(validator().iter_errors(manifest), key=str)
    assert not errors, [e.message for e in errors]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_declares_what_the_bot_needs(path: Path) -> None:
    manifest = json.loads(path.read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "users:read", "users:read.email", "im:write"} <= scopes
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/opportunity" and command["should_escape"] is True
    http = manifest["settings"]["socket_mode_enabled"] is False
    if http:
        assert command["url"].endswith("/slack/events")
        assert manifest["settings"]["interactivity"]["request_url"].endswith("/slack/events")


def test_manifest_validator_rejects_a_broken_manifest() -> None:
    broken = json.loads(MANIFESTS[0].read_text())
    broken["features"]["slash_commands"][0]["command"] = "no-slash"
    broken["display_information"]["name"] = "x" * 40
    assert list(validator().iter_errors(broken))


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_asks_for_link_previews_of_close_lead_links(path: Path) -> None:
    manifest = json.loads(path.read_text())
    default_app_url = Settings.model_fields["close_app_url"].default
    assert manifest["features"]["unfurl_domains"] == [unfurl_domain(default_app_url)]
    assert manifest["features"]["unfurl_domains"] == ["app.close.com"]
    assert "link_shared" in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert {"links:read", "links:write"} <= set(manifest["oauth_config"]["scopes"]["bot"])


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_declares_work_objects_and_their_flexpane_event(path: Path) -> None:
    manifest = json.loads(path.read_text())
    assert manifest["features"]["rich_previews"] == {
        "is_active": True,
        "entity_types": ["slack#/entities/item"],
    }
    assert "entity_details_requested" in manifest["settings"]["event_subscriptions"]["bot_events"]


def test_the_rich_previews_addition_is_strict() -> None:
    broken = json.loads(MANIFESTS[0].read_text())
    broken["features"]["rich_previews"] = {"is_active": "yes", "entity_types": ["lead"]}
    errors = list(validator().iter_errors(broken))
    assert errors
    found = {
        (tuple(sub.path)[-1], sub.validator)
        for error in errors
        for sub in _all(error)
        if "rich_previews" in sub.path
    }
    assert found == {("is_active", "type"), (0, "enum")}


def _all(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    return [error, *(deeper for sub in error.context or [] for deeper in _all(sub))]
