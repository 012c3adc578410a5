"""Shortcuts over real HTTP: a message becomes a deal in its thread; the lightning menu posts where asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.listeners.shortcuts import GLOBAL_SHORTCUT, MESSAGE_SHORTCUT
from bot.slack.text import clean_message_text, with_permalink
from sandbox.stack import Sandbox
from tests.flows import submit, thread_reply, wait_opportunities, wait_until

ACME = {"text": "Acme Corp", "value": "lead_acme"}


def block(view: dict[str, Any], block_id: str) -> dict[str, Any] | None:
    return next((b for b in view["blocks"] if b.get("block_id") == block_id), None)


async def run_message_shortcut(sb: Sandbox, message: dict[str, Any]) -> str:
    """Run "Create opportunity" on `message`; returns the view id once the bot has updated it."""
    mark = sb.slack.mark()
    result = await sb.driver.message_shortcut(MESSAGE_SHORTCUT, message=message)
    assert result.response.status_code == 200, result.response.text
    view = await sb.driver.wait_for_view(result.trigger_id)
    await sb.slack.wait_for(
        "views.update", lambda c: c.params.get("view_id") == view["id"], since=mark
    )
    return str(view["id"])


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (
            "Just closed <https://globex.com|Globex>, *40k one-time*, signed today! :tada: <!here>",
            "Just closed Globex, 40k one-time, signed today!",
        ),
        ("cc <@U0BOB> Acme Corp 12k", "cc Acme Corp 12k"),
        ("Acme Corp 12k owner: <@U0BOB|bob>", "Acme Corp 12k owner: <@U0BOB>"),
        ("Initech 5k in <#C0SALES|sales> see <https://x.example/deal>", "Initech 5k in see"),
        ("&gt; _Wayne Enterprises_ ~9k~ 10k", "Wayne Enterprises 9k 10k"),
        ("`Stark` ```Industries``` at 10:30:45", "Stark Industries at 10:30:45"),
        ("snake_case_name stays, AT&amp;T too", "snake_case_name stays, AT&amp;T too"),
        (
            "by <!date^1735603200^{date_short}|Dec 31, 2024> <mailto:a@b.co|a@b.co>",
            "by Dec 31, 2024 a@b.co",
        ),
        ("line one\n\n  line   two  ", "line one\nline two"),
    ],
)
def test_clean_message_text(raw: str, clean: str) -> None:
    assert clean_message_text(raw) == clean


def test_with_permalink_appends_once() -> None:
    link = "https://sandbox.slack.com/archives/C1/p1"
    assert with_permalink(None, link) == f"From Slack: {link}"
    assert with_permalink("intro via Hans", link) == f"intro via Hans\n\nFrom Slack: {link}"
    assert with_permalink(with_permalink("x", link), link) == f"x\n\nFrom Slack: {link}"
    assert with_permalink("x", None) == "x"


async def test_message_shortcut_prefills_and_confirms_in_the_messages_thread(
    sandbox: Sandbox,
) -> None:
    message = sandbox.slack.add_message(
        "C0SALES", "Just closed <https://globex.com|Globex>, 40k one-time :tada: cc <@U0BOB>"
    )
    view_id = await run_message_shortcut(sandbox, message)
    view = sandbox.slack.views[view_id]
    assert block(view, "lead")["element"]["initial_option"]["value"] == "lead_globex"  # type: ignore[index]
    assert block(view, "value")["element"]["initial_value"] == "$40,000"  # type: ignore[index]
    assert block(view, "owner")["element"]["initial_user"] == "U0ALICE"  # type: ignore[index]
    assert "link to the Slack message" in json.dumps(view["blocks"])

    mark = sandbox.slack.mark()
    await submit(sandbox, view_id)
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert opportunity["lead_id"] == "lead_globex" and opportunity["value"] == 4_000_000
    link = f"https://sandbox.slack.com/archives/C0SALES/p{message['ts'].replace('.', '')}"
    assert opportunity["note"] == f"From Slack: {link}"

    details = await thread_reply(sandbox, since=mark)
    assert details.params["channel"] == "C0SALES"
    assert details.params["thread_ts"] == message["ts"]
    await wait_until(lambda: len(sandbox.slack.thread("C0SALES", message["ts"])) == 3)
    _message, summary, in_close = sandbox.slack.thread("C0SALES", message["ts"])
    assert "Globex" in summary["text"] and "Open in Close" in json.dumps(in_close["blocks"])


async def test_message_shortcut_on_a_reply_confirms_in_the_parents_thread(
    sandbox: Sandbox,
) -> None:
    parent = sandbox.slack.add_message("C0SALES", "How did the Acme call go?", user="U0BOB")
    reply = sandbox.slack.add_message(
        "C0SALES", "Signed! Acme Corp 12k ARR note: multi-year", thread_ts=parent["ts"]
    )
    view_id = await run_message_shortcut(sandbox, reply)
    mark = sandbox.slack.mark()
    await submit(sandbox, view_id)
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert opportunity["lead_id"] == "lead_acme" and opportunity["value_period"] == "annual"
    assert opportunity["note"].startswith("multi-year\n\nFrom Slack: https://sandbox.slack.com/")
    assert f"?thread_ts={parent['ts']}" in opportunity["note"]

    details = await thread_reply(sandbox, since=mark)
    assert details.params["thread_ts"] == parent["ts"]
    assert [m["ts"] for m in sandbox.slack.thread("C0SALES", reply["ts"])] == [reply["ts"]]


async def test_link_is_fetched_after_the_modal_opens(sandbox: Sandbox) -> None:
    message = sandbox.slack.add_message("C0SALES", "Initech 3k/mo")
    await run_message_shortcut(sandbox, message)
    methods = [
        c.method for c in sandbox.slack.calls() if c.method in ("views.open", "chat.getPermalink")
    ]
    assert methods == ["views.open", "chat.getPermalink"]


async def test_link_is_fetched_at_submit_when_the_modal_never_got_it(sandbox: Sandbox) -> None:
    sandbox.slack.fail_method("chat.getPermalink", "internal_error")
    message = sandbox.slack.add_message("C0SALES", "Initech 3k/mo")
    view_id = await run_message_shortcut(sandbox, message)
    await submit(sandbox, view_id)
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert opportunity["note"].startswith("From Slack: https://sandbox.slack.com/archives/C0SALES/")


async def test_global_shortcut_posts_in_the_chosen_channel(sandbox: Sandbox) -> None:
    result = await sandbox.driver.global_shortcut(GLOBAL_SHORTCUT)
    assert result.response.status_code == 200
    view = await sandbox.driver.wait_for_view(result.trigger_id)
    picker = block(view, "post_in")
    assert picker is not None and picker["element"]["type"] == "conversations_select"
    assert picker["element"]["default_to_current_conversation"] is True
    assert picker["optional"] is True
    lead = block(view, "lead")
    assert lead is not None and "initial_option" not in lead["element"]

    mark = sandbox.slack.mark()
    await submit(sandbox, view["id"], {"lead": ACME, "value": "5k", "post_in": "C0SALES"})
    await wait_opportunities(sandbox, 1)
    details = await thread_reply(sandbox, since=mark)
    assert details.params["channel"] == "C0SALES"
    [summary] = [
        m for m in sandbox.slack.messages("C0SALES") if m["ts"] == details.params["thread_ts"]
    ]
    assert "Acme Corp" in summary["text"]


async def test_global_shortcut_without_a_choice_confirms_in_the_users_dm(
    sandbox: Sandbox,
) -> None:
    result = await sandbox.driver.global_shortcut(GLOBAL_SHORTCUT, user_id="U0BOB")
    view = await sandbox.driver.wait_for_view(result.trigger_id)
    mark = sandbox.slack.mark()
    await submit(sandbox, view["id"], {"lead": ACME, "value": "7k"})
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert opportunity["user_id"] == "user_bob"
    details = await thread_reply(sandbox, since=mark)
    dm = sandbox.slack.workspace.app_dm("U0BOB").id
    assert details.params["channel"] == dm
    assert not [m for m in sandbox.slack.messages("C0SALES") if "Acme" in m.get("text", "")]


@pytest.mark.parametrize("name", ["http.json", "socket.json"])
def test_manifests_declare_the_shortcuts_home_tab_and_event_the_bot_listens_to(name: str) -> None:
    path = Path(__file__).resolve().parents[1] / "manifests" / name
    manifest = json.loads(path.read_text())
    shortcuts = {s["callback_id"]: s["type"] for s in manifest["features"]["shortcuts"]}
    assert shortcuts == {MESSAGE_SHORTCUT: "message", GLOBAL_SHORTCUT: "global"}
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    events = manifest["settings"]["event_subscriptions"]
    # App Home, Slack Connect shares, link previews and their Work Object flexpane, the
    # workflow step: each has its listener (and nothing else).
    assert sorted(events["bot_events"]) == [
        "app_home_opened",
        "channel_shared",
        "channel_unshared",
        "entity_details_requested",
        "function_executed",
        "link_shared",
    ]
    if not manifest["settings"]["socket_mode_enabled"]:
        assert events["request_url"].endswith("/slack/events")
