"""The edit modal's memory of what it loaded: fits Slack's private_metadata, sends only changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.blocks.messages import EDIT_ACTION_ID
from bot.blocks.modal import EDIT_CALLBACK_ID, ModalMetadata
from bot.blocks.text import PRIVATE_METADATA
from bot.deals.changes import changed_fields, fingerprints
from sandbox import blockkit
from sandbox.close_sim import CloseSimulator, default_org
from sandbox.stack import CLOSE_API_KEY, running_sandbox
from tests.flows import wait_until
from tests.test_confirmation_actions import log_deal, press, puts

# Close's custom field ids are "cf_" and 43 more characters.
LONG_IDS = [f"cf_{n:02d}" + "x" * 41 for n in range(60)]


def test_only_fields_unlike_what_was_loaded_and_shown_are_changed() -> None:
    loaded = fingerprints(
        {"value": 1_200_000, "note": "first call", "custom.cf_a": ["x", "y"], "custom.cf_b": None}
    )
    submitted = {
        "value": 1_200_000,
        "note": "  first call ",  # blank around it is not a change
        "custom.cf_a": ["x", "z"],
        "custom.cf_b": "new",
        "custom.cf_c": None,  # a field Close added since the form opened, left empty
    }
    assert changed_fields(loaded, submitted, set(submitted)) == ["custom.cf_a", "custom.cf_b"]
    assert changed_fields(loaded, submitted, {"value", "note", "custom.cf_b"}) == ["custom.cf_b"]
    cleared: dict[str, Any] = {"value": None, "note": "", "custom.cf_a": [], "custom.cf_b": ""}
    assert changed_fields(loaded, cleared, set(cleared)) == ["value", "note", "custom.cf_a"]


async def test_an_opportunity_with_60_filled_custom_fields_opens_for_edit_and_saves_one(
    tmp_path: Path,
) -> None:
    org = default_org()
    for cf_id in LONG_IDS:
        org.add_custom_field(cf_id, f"Field {cf_id[:5]}", "text")
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        close=CloseSimulator(api_key=CLOSE_API_KEY, org=org),
    ) as sb:
        opportunity, details = await log_deal(sb)
        opportunity.update({f"custom.{cf_id}": "V" * 300 for cf_id in LONG_IDS})
        result = await press(sb, details, EDIT_ACTION_ID)
        view = await sb.driver.wait_for_view(result.trigger_id)
        await sb.slack.wait_for(
            "views.update", lambda c: c.ok and c.params.get("view_id") == view["id"]
        )
        view = sb.slack.views[view["id"]]
        assert view["callback_id"] == EDIT_CALLBACK_ID
        assert blockkit.problems(view, surface="modal") == []
        assert len(view["private_metadata"]) <= PRIVATE_METADATA
        metadata = ModalMetadata.decode(view["private_metadata"])
        assert metadata is not None and metadata.loaded

        changed = LONG_IDS[7]
        response = await sb.driver.submit_view(view["id"], values={f"custom.{changed}": "changed"})
        assert response.status_code == 200, response.text
        await wait_until(lambda: bool(puts(sb)))
        [put] = puts(sb)
        assert put.json == {f"custom.{changed}": "changed"}
        assert opportunity[f"custom.{LONG_IDS[8]}"] == "V" * 300


async def test_an_edit_form_opened_before_the_fingerprint_format_asks_to_reopen(
    tmp_path: Path,
) -> None:
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    ) as sb:
        _opportunity, details = await log_deal(sb)
        result = await press(sb, details, EDIT_ACTION_ID)
        view = await sb.driver.wait_for_view(result.trigger_id)
        await sb.slack.wait_for("views.update", lambda c: c.params.get("view_id") == view["id"])
        metadata = ModalMetadata.decode(sb.slack.views[view["id"]]["private_metadata"])
        assert metadata is not None
        old = metadata.model_copy(update={"loaded": {"value": "0123456789", "note": "abcdef0123"}})
        sb.slack.views[view["id"]]["private_metadata"] = old.encode()
        response = await sb.driver.submit_view(view["id"], values={"value": "15k"})
        assert response.status_code == 200
        assert "out of date" in json.dumps(response.json())
        assert puts(sb) == []
