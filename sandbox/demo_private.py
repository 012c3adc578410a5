"""The demo's scenes about who sees what: a person connecting their own Close (the simulator's
consent page), and a deal logged in a channel shared with another organization staying out of
what that channel shows."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx

from sandbox.render import render_message
from sandbox.slack_sim import Call
from sandbox.stack import Sandbox

SHARED = "C0ACME"  # #acme-shared: shared with Acme's own Slack organization
SHARED_TEXT = "Initech 8k one-time 40% close end of month"
# What Close holds of that deal and the shared channel must never show.
CLOSE_VALUES = ("8,000", "40%")


class DemoFailed(Exception):
    """The demo showed something it must not (a Close value in a shared channel)."""


def _say(text: str = "") -> None:
    print(text, flush=True)


def _page_text(page: str) -> str:
    """The connect page's title and first paragraph, as a person reads them."""
    found = re.findall(r"<(h1|p)>(.*?)</\1>", page, flags=re.S)
    said = [re.sub(r"<[^>]+>", "", text).strip() for tag, text in found if "<" not in text]
    return " — ".join(said[:2])


def _link_button(message: dict[str, Any]) -> str:
    for block in message.get("blocks") or []:
        for element in block.get("elements") or [block.get("accessory") or {}]:
            if element.get("type") == "button" and element.get("url"):
                return str(element["url"])
    raise DemoFailed(f"no Connect Close button in {message.get('text')!r}")


async def connect_close(sandbox: Sandbox) -> None:
    """Alice connects her own Close account: the command's private button, Close's consent
    page, back to the bot's page and a DM; from then on what she logs goes to Close as her."""
    slack, driver = sandbox.slack, sandbox.driver
    _say()
    _say("Alice connects her own Close account:  /opportunity connect")
    mark = slack.mark()
    result = await driver.slash_command("connect", user_id="U0ALICE", channel_id="C0SALES")
    rid = slack.response_url_id(result.response_url)
    answer = await slack.wait_for(
        "response_url", lambda call: call.params["id"] == rid, since=mark, timeout=10.0
    )
    body: dict[str, Any] = answer.params["body"]
    _say(f"  only she sees the answer: “{body.get('text')}” with a Connect Close button")
    async with httpx.AsyncClient(timeout=10.0) as http:
        start = await http.get(_link_button(body))
        consent_url = start.headers["location"]
        consent = await http.get(consent_url)
        _say(f"  the button opens Close's consent page ({consent_url.split('?')[0]}):")
        _say(f"    “{_page_text(consent.text)}” [Allow] [Deny]")
        form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', consent.text))
        allowed = await http.post(
            consent_url, data={**form, "user": "user_alice", "decision": "grant"}
        )
        page = await http.get(allowed.headers["location"])
    _say("  she signs in as alice@example.com and allows it; Close sends her back to the bot:")
    _say(f"    “{_page_text(page.text)}”")
    dm = await slack.wait_for(
        "chat.postMessage",
        lambda call: call.ok and "connected to Close as" in str(call.params.get("text")),
        since=mark,
        timeout=10.0,
    )
    _say("  and in her DM with the app: " + " ".join(render_message(dm.params)))


async def deal_in_a_shared_channel(sandbox: Sandbox) -> None:
    """Alice logs a deal in #acme-shared, which Acme's people read too: the channel gets no
    Close data; what she is told comes to her alone (a note in the channel only she sees, the
    confirmation by DM — or privately through the command's response_url)."""
    slack, close, driver = sandbox.slack, sandbox.close, sandbox.driver
    slack.add_channel(SHARED, "acme-shared")
    slack.share_channel(SHARED, "T0ACME")
    slack.add_external_user("U0EXTERN", team_id="T0ACME", channels=[SHARED])
    _say()
    _say("#acme-shared is shared with Acme's own Slack (Ed of Acme reads it).")
    _say(f"Alice types there:  /opportunity {SHARED_TEXT}")
    mark, known = slack.mark(), len(close.opportunities)
    result = await driver.slash_command(SHARED_TEXT, user_id="U0ALICE", channel_id=SHARED)
    view = await driver.wait_for_view(result.trigger_id)
    await slack.wait_for("views.update", since=mark, timeout=10.0)  # the lead matched in Close
    response = await driver.submit_view(view["id"], values={"custom.cf_source": "Inbound"})
    if response.content and response.json().get("response_action") == "errors":
        raise DemoFailed(f"the modal refused the deal: {response.json()['errors']}")
    opportunity = await _told(sandbox, known)
    creator = opportunity.get("created_by_name") or opportunity.get("created_by")
    [*_, sent] = [r for r in close.requests if r.method == "POST" and r.path == "/opportunity/"]
    how = (
        "with her own Close connection"
        if sent.headers.get("authorization", "").startswith("Bearer ")
        else "with the org's API key"
    )
    _say(f"  Close has it ({opportunity['id']}), created by {creator}, {how}")
    calls = slack.calls()[mark:]
    shown = slack.messages(SHARED)
    _say("  What #acme-shared shows everyone in it, Ed included:")
    _show(shown, "(nothing from the bot)")
    _say("  What only Alice sees in #acme-shared:")
    _show(_private_notes(calls), "(nothing)")
    _say("  In Alice's DM with the app:")
    _show([c.params for c in calls if _to_dm(c)], "(nothing)")
    leaked = [value for value in CLOSE_VALUES if value in json.dumps(shown, ensure_ascii=False)]
    if leaked:
        raise DemoFailed(f"#acme-shared shows Close data: {', '.join(leaked)}")
    _say(f"  No Close value ({', '.join(CLOSE_VALUES)}) reached #acme-shared.")


async def _told(sandbox: Sandbox, known: int, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
    """The new opportunity, once Close has it and the bot has told Alice about it."""
    deadline = time.monotonic() + timeout
    while True:
        if len(sandbox.close.opportunities) > known:
            opportunity: dict[str, Any] = sandbox.close.opportunities[-1]
            submission = await sandbox.services.store.by_opportunity(opportunity["id"])
            if submission is not None and submission.confirmed_at is not None:
                return opportunity
        if time.monotonic() > deadline:
            raise TimeoutError(f"the deal logged in #acme-shared was not told within {timeout}s")
        await asyncio.sleep(0.05)


def _private_notes(calls: list[Call]) -> list[dict[str, Any]]:
    """What the bot showed Alice alone in the shared channel: ephemeral messages and answers
    through the command's response_url."""
    notes: list[dict[str, Any]] = []
    for call in calls:
        if call.method == "chat.postEphemeral" and call.params.get("channel") == SHARED:
            notes.append(call.params)
        elif call.method == "response_url" and isinstance(call.params.get("body"), dict):
            notes.append(call.params["body"])
    return notes


def _to_dm(call: Call) -> bool:
    channel = str(call.response.get("channel") or call.params.get("channel") or "")
    return call.method == "chat.postMessage" and call.ok and channel.startswith(("D", "U"))


def _show(messages: list[dict[str, Any]], empty: str) -> None:
    if not messages:
        _say(f"    {empty}")
    for message in messages:
        _say("    │ " + "\n    │ ".join(render_message(message)))
