"""`python -m bot demo`: the whole flow against local Slack and Close simulators, no accounts needed."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from sandbox.demo_private import DemoFailed, connect_close, deal_in_a_shared_channel
from sandbox.render import render_message, render_view
from sandbox.stack import Sandbox, running_sandbox

DEMO_TEXT = "Acme Corp 12k annual 60% close next friday"
DEMO_ALERT_WINDOW = 2.0


async def _changed_in_close(sandbox: Sandbox, parent_ts: str) -> None:
    """A manager moves the deal on in Close; the webhook brings it back into the thread."""
    slack, close = sandbox.slack, sandbox.close
    opportunity = close.opportunities[-1]
    _say()
    _say("Later, Bob (a manager) changes the deal in Close: 15k, status Proposal Sent.")
    mark = slack.mark()
    started = time.monotonic()
    close.change_opportunity(opportunity["id"], {"value": 1_500_000, "status_id": "stat_proposal"})
    await slack.wait_for(
        "chat.postMessage",
        lambda call: call.ok and str(call.params.get("text", "")).endswith("changed it in Close"),
        since=mark,
        timeout=10.0,
    )
    await slack.wait_for("chat.update", lambda call: call.ok, since=mark, timeout=10.0)
    _say(
        f"  Close's webhook reached the bot, and Slack showed it {time.monotonic() - started:.2f} s "
        "later: the summary is updated in place, the thread says what changed and who changed it:"
    )
    for index, message in enumerate(slack.thread("C0SALES", parent_ts)):
        lines = render_message(message)
        if index == 0:
            _say("  " + "\n  ".join(lines))
        elif str(message.get("text", "")).endswith("changed it in Close"):
            _say("    ↳ " + "\n      ".join(lines))
    window = sandbox.settings.alert_window_seconds
    _say()
    _say(f"Alice owns the deal, so she gets an owner alert once its {window:g} s window closes:")
    alert = await slack.wait_for(
        "chat.postMessage",
        lambda call: call.ok and call.params.get("channel") == "U0ALICE",
        since=mark,
        timeout=10.0 + window,
    )
    _say("  (DM) " + "\n       ".join(render_message(alert.params)))


async def _link_preview(sandbox: Sandbox) -> None:
    """Bob pastes the lead's Close link; the bot previews it (Close slowed to 1 s), and the same
    link pasted again elsewhere is previewed from what was just read."""
    slack, close, driver = sandbox.slack, sandbox.close, sandbox.driver
    url = f"{sandbox.settings.close_app_url}lead/lead_acme/"
    reads = close.count("GET", "/lead/")
    close.latency = 1.0
    _say()
    _say(f"Bob pastes in #sales: “can you look at {url} before the call?” (Close answers in 1 s)")
    for channel in ("C0SALES", "C0GENERAL"):
        mark = slack.mark()
        started = time.monotonic()
        pasted = await driver.paste_links(
            [url],
            user_id="U0BOB",
            channel_id=channel,
            text=f"can you look at <{url}> before the call?",
        )
        await slack.wait_for("chat.unfurl", lambda call: call.ok, since=mark, timeout=10.0)
        took = time.monotonic() - started
        acked = pasted.response.elapsed.total_seconds() * 1000
        if channel == "C0SALES":
            _say(
                f"  bot acked link_shared in {acked:.0f} ms; Slack showed the preview "
                f"{took:.2f} s after the paste:"
            )
            for line in render_message({"blocks": slack.unfurls(pasted.shared)[url]["blocks"]}):
                _say("    │ " + line)
        else:
            _say(
                f"  pasted again in #general: previewed in {took * 1000:.0f} ms, from the same read"
            )
    close.latency = 0.0
    _say(f"  Close reads for both previews: {close.count('GET', '/lead/') - reads}")


def _say(text: str = "") -> None:
    print(text, flush=True)


async def run_demo() -> int:
    logging.basicConfig(level=logging.WARNING)
    try:
        return await _demo()
    except (TimeoutError, DemoFailed) as error:
        print(f"The demo did not complete: {error}", file=sys.stderr)
        return 1


async def _demo() -> int:
    _say("Starting local Slack and Close simulators and the bot (HTTP, signed requests)…")
    # The bot's own address is its PUBLIC_URL: Close's changes come back by webhook, and people
    # may connect their own Close (the simulator's OAuth app).
    # Owner alerts' window shortened from a minute, so the demo shows Alice's alert at once.
    async with running_sandbox(oauth=True, alert_window_seconds=DEMO_ALERT_WINDOW) as sandbox:
        slack, close, driver = sandbox.slack, sandbox.close, sandbox.driver
        _say(f"  bot listening at {sandbox.events_url}")
        _say()
        _say(f"Alice types in #sales:  /opportunity {DEMO_TEXT}")
        result = await driver.slash_command(DEMO_TEXT, user_id="U0ALICE", channel_id="C0SALES")
        _say(f"  bot acked in {result.response.elapsed.total_seconds() * 1000:.0f} ms")
        view = await driver.wait_for_view(result.trigger_id)
        view_id = view["id"]
        await slack.wait_for("views.update", timeout=5.0)  # the lead looked up in Close
        _say("  the modal opens at once, prefilled; the lead is matched in Close a moment later:")
        for line in render_view(slack.views[view_id]):
            _say("    " + line)
        _say()
        _say("Alice picks Source: Inbound (a field this Close org requires) and presses Create.")
        mark = slack.mark()
        response = await driver.submit_view(view_id, values={"custom.cf_source": "Inbound"})
        _say(
            f"  bot acked in {response.elapsed.total_seconds() * 1000:.0f} ms; "
            "the modal shows “Creating…” until Close answers"
        )
        await slack.wait_for("chat.postMessage", since=mark, timeout=10.0)
        details = await slack.wait_for(
            "chat.postMessage", lambda call: bool(call.params.get("thread_ts")), timeout=10.0
        )
        parent_ts = details.params["thread_ts"]
        _say()
        _say("In #sales:")
        thread: list[dict[str, Any]] = slack.thread("C0SALES", parent_ts)
        for index, message in enumerate(thread):
            lines = render_message(message)
            if index == 0:
                _say("  " + "\n  ".join(lines))
            else:
                _say("    ↳ " + "\n      ".join(lines))
        _say()
        _say("In Close, the opportunity as stored:")
        stored = {k: v for k, v in close.opportunities[-1].items() if not k.startswith("_")}
        _say("  " + json.dumps(stored, indent=2, default=str).replace("\n", "\n  "))
        await _changed_in_close(sandbox, parent_ts)
        await _link_preview(sandbox)
        await connect_close(sandbox)
        await deal_in_a_shared_channel(sandbox)
    _say()
    _say("Demo complete: no Slack or Close account was used.")
    return 0
