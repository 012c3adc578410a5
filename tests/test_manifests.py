"""Our Slack app manifests validate against Slack's published manifest JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

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


def validator() -> jsonschema.Draft7Validator:
    folder = SPECS / "slack-manifest-schema"
    root = json.loads((folder / "manifest.schema.json").read_text())
    registry: Registry = Registry()
    for url, name in SCHEMA_REFS.items():
        registry = registry.with_resource(
            url, Resource.from_contents(json.loads((folder / name).read_text()))
        )
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
