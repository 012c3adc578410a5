"""The plain-dict modal builder: what slack_sdk.models would build and validate, within every limit."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.models.views import View

from bench.modal_bench import cases
from bot.blocks.custom_fields import search_options
from bot.blocks.modal import (
    LeadOption,
    ModalForm,
    ModalMetadata,
    ModalTooBig,
    build_opportunity_modal,
    lead_options,
)
from bot.close.models import CustomField
from sandbox.blockkit import problems
from tests.test_limits import BigOrg, _big_form

CASES = cases()
# Custom fields, statuses and the form: normal, every field type, and an oversized org.
VIEW_CASES = sorted(name for name in CASES if "/" in name and not name.startswith("lead_"))


def _through_slack_sdk(view: dict[str, Any]) -> dict[str, Any]:
    """The view parsed into slack_sdk.models and rendered back: to_dict() validates every level."""
    parsed = View(**view)
    parsed.validate_json()
    rendered: dict[str, Any] = parsed.to_dict()
    return rendered


@pytest.mark.parametrize("name", VIEW_CASES)
def test_every_built_view_is_what_slack_sdk_builds_and_valid(name: str) -> None:
    view = CASES[name]()
    assert _through_slack_sdk(view) == view
    assert problems(view, surface="modal") == []


def test_the_oversized_org_with_huge_input_passes_slack_sdk_and_the_checker() -> None:
    view = build_opportunity_modal(_big_form(), BigOrg())
    assert _through_slack_sdk(view) == view
    assert problems(view, surface="modal") == []
    status = next(b for b in view["blocks"] if b.get("block_id") == "status")["element"]
    assert sum(len(group["options"]) for group in status["option_groups"]) == 100
    # A custom value longer than Slack's input takes is cut, not rejected.
    inputs = [b["element"] for b in view["blocks"] if b["type"] == "input"]
    values = [e["initial_value"] for e in inputs if "initial_value" in e]
    assert values and all(len(v) <= 3000 for v in values)


class HugeOrg(BigOrg):
    """More custom fields than a modal has blocks: 130, every third required."""

    @property
    def custom_fields(self) -> list[CustomField]:
        return [
            CustomField(id=f"cf_{i:03d}", name=f"Field {i}", type="text", required=i % 3 == 0)
            for i in range(130)
        ]


def test_more_fields_than_blocks_keeps_the_required_ones_within_100_blocks() -> None:
    view = build_opportunity_modal(_big_form(), HugeOrg())
    assert _through_slack_sdk(view) == view
    assert problems(view, surface="modal") == []
    assert len(view["blocks"]) <= 100
    shown = {b.get("block_id") for b in view["blocks"]}
    assert {f"custom.cf_{i:03d}" for i in range(0, 130, 3)} <= shown
    assert "custom.cf_001" not in shown
    assert any("not shown here" in str(b) for b in view["blocks"])


def test_private_metadata_over_slacks_limit_is_refused_before_slack_sees_it() -> None:
    form = ModalForm(metadata=ModalMetadata(key="k", response_url="https://x/" + "r" * 3000))
    with pytest.raises(ModalTooBig):
        build_opportunity_modal(form, BigOrg())


def test_option_lists_pass_slack_sdk() -> None:
    from slack_sdk.models.blocks import Option

    leads = [LeadOption(value="lead_" + "i" * 200, label="L" * 300) for _ in range(150)]
    org = BigOrg()
    big = next(f for f in org.custom_fields if len(f.choices) > 100)
    for found in (lead_options(leads, "x" * 300), search_options(big, org.users, "")):
        assert len(found) == 100
        for raw in found:
            parsed = Option(**raw)
            assert parsed.to_dict("block") == raw
