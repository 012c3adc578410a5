"""An update of a modal never comes before its ack's view: Slack acts on the ack a network away,
so a Close that answers at once must not have its outcome covered by "Creating…"/"Saving…"."""

from __future__ import annotations

import json

from bot.slack.after_ack import ACK_SETTLE_SECONDS
from sandbox.stack import Sandbox
from tests.flows import open_modal, submit, wait_until
from tests.test_confirmation_actions import log_deal, open_edit

# Slack acts on the ack this long after the bot answered (well inside ACK_SETTLE_SECONDS).
SLACK_TAKES = 0.1
assert SLACK_TAKES < ACK_SETTLE_SECONDS


def shown(sb: Sandbox, view_id: str) -> str:
    return json.dumps(sb.slack.views[view_id]["blocks"])


async def test_created_is_not_covered_by_creating_when_close_answers_at_once(
    sandbox: Sandbox,
) -> None:
    view_id = await open_modal(sandbox, "Acme Corp 12k")
    sandbox.driver.ack_applied_after = SLACK_TAKES
    ack = await submit(sandbox, view_id)
    assert ack["response_action"] == "update" and "Creating" in json.dumps(ack["view"])
    await wait_until(lambda: "Created the opportunity" in shown(sandbox, view_id))
    assert len(sandbox.close.opportunities) == 1


async def test_a_failed_edit_is_not_covered_by_saving_when_close_refuses_at_once(
    sandbox: Sandbox,
) -> None:
    opportunity, details = await log_deal(sandbox)
    view_id = await open_edit(sandbox, details)
    sandbox.close.fail(1, 400, paths=[f"/opportunity/{opportunity['id']}/"], methods=["PUT"])
    sandbox.driver.ack_applied_after = SLACK_TAKES
    response = await sandbox.driver.submit_view(view_id, values={"confidence": "80"})
    assert response.status_code == 200, response.text
    assert "Saving" in json.dumps(response.json()["view"])
    await wait_until(lambda: "Close did not save it" in shown(sandbox, view_id))


async def test_a_saved_edit_is_not_covered_by_saving(sandbox: Sandbox) -> None:
    _, details = await log_deal(sandbox)
    view_id = await open_edit(sandbox, details)
    sandbox.driver.ack_applied_after = SLACK_TAKES
    response = await sandbox.driver.submit_view(view_id, values={"confidence": "80"})
    assert response.status_code == 200, response.text
    await wait_until(lambda: "Saved *Acme Corp* in Close" in shown(sandbox, view_id))
