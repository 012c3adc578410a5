"""App Home over real HTTP: published on app_home_opened with the user's recent opportunities, fresh from Close."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

from bot.blocks.home import HOME_LOG_ACTION_ID
from bot.blocks.messages import EDIT_ACTION_ID
from sandbox.slack_driver import FORM
from sandbox.slack_sim import Call
from sandbox.stack import Sandbox
from tests.flows import open_modal, submit


def settled(call: Call, user_id: str) -> bool:
    """A Home of `user_id` published once Close has answered (the first one, published at
    once, says it is still reading Close)."""
    return (
        call.ok
        and call.params.get("user_id") == user_id
        and "week_loading" not in json.dumps(call.params.get("view"))
    )


async def published_home(sb: Sandbox, user_id: str) -> dict[str, Any]:
    """Open `user_id`'s Home; the view published once Close has answered."""
    mark = sb.slack.mark()
    response = await sb.driver.app_home_opened(user_id)
    assert response.status_code == 200, response.text
    call = await sb.slack.wait_for("views.publish", lambda c: settled(c, user_id), since=mark)
    return dict(call.response["view"])


async def confirmed(sb: Sandbox, since: int) -> None:
    """Until the confirmation is out (the submission is recorded as created by then)."""
    await sb.slack.wait_for(
        "chat.postMessage",
        lambda c: c.ok and EDIT_ACTION_ID in json.dumps(c.params.get("blocks")),
        since=since,
    )


def sections(view: dict[str, Any]) -> list[str]:
    return [
        b["text"]["text"]
        for b in view["blocks"]
        if b.get("block_id", "").startswith("recent_") and b.get("type") == "section"
    ]


async def test_home_of_a_new_user_offers_the_button_and_says_none_yet(sandbox: Sandbox) -> None:
    view = await published_home(sandbox, "U0CAROL")
    assert view["type"] == "home"
    text = json.dumps(view["blocks"])
    assert HOME_LOG_ACTION_ID in text and "Log an opportunity" in text
    assert "None yet" in text and sections(view) == []


async def test_home_lists_the_users_recent_opportunities_as_close_has_them(
    sandbox: Sandbox,
) -> None:
    for user, text in [
        ("U0ALICE", "Acme Corp 12k annual close 2031-01-15"),
        ("U0BOB", "Initech 3k/mo"),
        ("U0ALICE", "Globex 40k one-time"),
    ]:
        view_id = await open_modal(sandbox, text, user_id=user)
        mark = sandbox.slack.mark()
        await submit(sandbox, view_id)
        await confirmed(sandbox, mark)
    acme = sandbox.close.opportunities[0]
    # Changed in Close since it was logged: the Home tab shows Close's current status.
    await sandbox.services.close.update_opportunity(acme["id"], {"status_id": "stat_won"})

    view = await published_home(sandbox, "U0ALICE")
    globex, acme_line = sections(view)
    assert "Globex Corporation" in globex and "$40,000 one-time" in globex
    assert "Acme Corp" in acme_line and "$12,000 annual" in acme_line
    assert "Won" in acme_line and "closes Wed 15 Jan 2031" in acme_line
    assert f"{sandbox.settings.close_app_url}lead/lead_acme/" in acme_line
    assert "Initech" not in json.dumps(view["blocks"])


async def test_home_still_lists_when_close_is_down(sandbox: Sandbox) -> None:
    view_id = await open_modal(sandbox, "Acme Corp 12k")
    mark = sandbox.slack.mark()
    await submit(sandbox, view_id)
    await confirmed(sandbox, mark)
    sandbox.close.fail(50, 503, paths=["/opportunity/"], methods=["GET"])
    view = await published_home(sandbox, "U0ALICE")
    [line] = sections(view)
    assert "Acme Corp" in line and "as logged" in line


async def test_home_button_opens_the_modal_with_the_post_in_picker(sandbox: Sandbox) -> None:
    home = await published_home(sandbox, "U0ALICE")
    trigger_id = sandbox.slack.issue_trigger("U0ALICE")
    payload = {
        "type": "block_actions",
        "api_app_id": sandbox.driver.api_app_id,
        "team": {"id": sandbox.driver.team_id, "domain": "sandbox"},
        "user": {"id": "U0ALICE", "username": "alice", "name": "alice"},
        "container": {"type": "view", "view_id": home["id"]},
        "trigger_id": trigger_id,
        "view": home,
        "actions": [
            {
                "type": "button",
                "action_id": HOME_LOG_ACTION_ID,
                "block_id": "home_actions",
                "text": {"type": "plain_text", "text": "Log an opportunity"},
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    response = await sandbox.driver.raw(body, FORM)
    assert response.status_code == 200
    modal = await sandbox.driver.wait_for_view(trigger_id)
    assert any(b.get("block_id") == "post_in" for b in modal["blocks"])
