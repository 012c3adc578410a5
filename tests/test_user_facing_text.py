"""What users read in Slack: Close's text escaped, Close's errors redacted, and a failed save kept safe."""

from __future__ import annotations

import json

from bot.blocks import messages
from bot.blocks.home import HomeEntry, home_view
from bot.close.errors import CloseError
from bot.close.models import Opportunity
from bot.deals.changes import close_said
from sandbox.stack import Sandbox
from tests.flows import wait_until
from tests.test_confirmation_actions import log_deal, open_edit, puts

CLOSE_KEY = "api_4kQm9xZtW2.8fJr3LpNvYhC"
SLACK_TOKEN = "xoxb-FAKE-abcdefghijkl"


def test_the_home_tab_escapes_the_currency_as_close_has_it() -> None:
    opportunity = Opportunity(
        id="oppo_1",
        lead_id="lead_1",
        lead_name="<!channel> Acme",
        status_label="<@U0EVE>",
        value=1_200_000,
        value_currency="<!here>",
        value_period="annual",
    )
    view = home_view([HomeEntry(opportunity=opportunity)], close_app_url="https://app.close.com/")
    [entry] = [b["text"]["text"] for b in view["blocks"] if b.get("block_id") == "recent_0"]
    assert "&lt;!here&gt;12,000 annual" in entry
    assert "<!" not in entry and "<@" not in entry


def test_a_failure_reason_never_carries_a_credential_to_slack() -> None:
    reason = f"Close said: invalid key {CLOSE_KEY} (Authorization: Bearer {SLACK_TOKEN})"
    message = messages.failed("Acme", reason, submission_id="s1")
    shown = json.dumps(message.model_dump())
    assert CLOSE_KEY not in shown and SLACK_TOKEN not in shown
    assert "[redacted]" in message.blocks[0]["text"]["text"] and "[redacted]" in message.text


def test_a_close_error_told_in_the_thread_is_redacted_and_escaped() -> None:
    told = close_said(CloseError(f"bad key {CLOSE_KEY} for <!channel>"))
    assert CLOSE_KEY not in told and "[redacted]" in told and "&lt;!channel&gt;" in told


async def test_save_again_after_a_failed_edit_does_not_create_the_new_lead_twice(
    sandbox: Sandbox,
) -> None:
    opportunity, details = await log_deal(sandbox)
    view_id = await open_edit(sandbox, details)
    path = f"/opportunity/{opportunity['id']}/"
    sandbox.close.fail(1, 400, paths=[path], methods=["PUT"])
    response = await sandbox.driver.submit_view(
        view_id, values={"lead": {"text": "Create new lead: Zeta", "value": "new:Zeta"}}
    )
    assert response.status_code == 200, response.text
    await wait_until(
        lambda: "Close did not save it" in json.dumps(sandbox.slack.views[view_id]["blocks"])
    )
    response = await sandbox.driver.submit_view(view_id)  # Save again, as Slack keeps it
    assert response.status_code == 200, response.text
    await wait_until(lambda: len(puts(sandbox)) == 2 and opportunity["lead_id"] != "lead_acme")
    zetas = [lead for lead in sandbox.close.org.leads if lead["name"] == "Zeta"]
    assert [lead["id"] for lead in zetas] == [opportunity["lead_id"]]
