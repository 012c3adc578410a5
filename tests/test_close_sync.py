"""Close -> Slack over real HTTP: a change made in Close updates the summary in place and adds one
thread reply, by webhook or by the event log, whatever Close redelivers, reorders or delays."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.blocks.messages import EDIT_ACTION_ID, LOST_ACTION_ID, WON_ACTION_ID
from bot.runtime.doctor import run_doctor
from bot.runtime.history import print_history
from bot.services import Services
from bot.sync.events import CloseEvent
from bot.sync.store import ChangeState
from bot.sync.webhook import STATE_KEY, sign
from sandbox.stack import Sandbox, running_sandbox, sandbox_settings
from tests.flows import wait_until
from tests.test_app_home import published_home, sections
from tests.test_confirmation_actions import buttons, log_deal, message, open_edit, press

FAST_POLL = 0.2


@contextlib.asynccontextmanager
async def webhook_sandbox(database_url: str) -> AsyncIterator[Sandbox]:
    """The bot with PUBLIC_URL = its own address: Close delivers changes by webhook."""
    async with running_sandbox(
        database_url=database_url, webhook=True, deals_channel="C0GENERAL"
    ) as sb:
        for _ in range(250):  # the subscription is set up in the background at start
            if await sb.services.changes.get_state(STATE_KEY):
                break
            await asyncio.sleep(0.02)
        yield sb


@pytest.fixture
async def hooked(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with webhook_sandbox(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}") as sb:
        yield sb


@pytest.fixture
async def hooked_anywhere(database_url: str) -> AsyncIterator[Sandbox]:
    async with webhook_sandbox(database_url) as sb:
        yield sb


@pytest.fixture
async def polling(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """No public URL: the bot reads Close's event log every FAST_POLL seconds."""
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        close_events_poll_seconds=FAST_POLL,
    ) as sb:
        yield sb


def replies(sb: Sandbox, channel: str, root: str) -> list[dict[str, Any]]:
    """The bot's thread replies about changes made in Close (not the details, not its own)."""
    return [
        m
        for m in sb.slack.thread(channel, root)
        if m.get("text", "").endswith(("changed it in Close", "deleted the opportunity in Close"))
    ]


def wins(sb: Sandbox) -> list[dict[str, Any]]:
    """The deals channel's cheers for won deals."""
    return [m for m in sb.slack.messages("C0GENERAL") if "is won" in _text(m)]


def _text(m: dict[str, Any]) -> str:
    return json.dumps(m.get("blocks") or m.get("text"), ensure_ascii=False)


async def settled(sb: Sandbox, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Every change received is applied or skipped (nothing pending, claimed or telling)."""

    async def open_count() -> int:
        counts = await sb.services.changes.counts()
        return sum(
            n
            for state, n in counts.items()
            if state not in (ChangeState.APPLIED.value, ChangeState.SKIPPED.value)
        )

    deadline = asyncio.get_running_loop().time() + timeout
    while await open_count():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"changes still open: {await sb.services.changes.counts()}")
        await asyncio.sleep(0.05)


async def read_again(sb: Sandbox, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Once the event log has been read (and what it found stored) by a read begun now."""
    poller, since = sb.services.sync.poller, sb.services.clock()
    assert poller is not None
    # `last_read_at` is when the last whole read began, set once it has stored its events.
    await wait_until(lambda: (poller.last_read_at or since) > since, timeout=timeout)


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    await wait_until(predicate, timeout=timeout)


# --- the webhook subscription -------------------------------------------------------------


async def test_one_subscription_for_the_public_url_with_its_key_in_the_database(
    hooked: Sandbox,
) -> None:
    url = hooked.settings.close_webhook_url
    assert [w["url"] for w in hooked.close.webhooks] == [url]
    subscription = hooked.close.webhooks[0]
    assert {(e["object_type"], e["action"]) for e in subscription["events"]} == {
        ("opportunity", "created"),
        ("opportunity", "updated"),
        ("opportunity", "deleted"),
    }
    stored = await hooked.services.changes.get_state(STATE_KEY)
    assert stored is not None and stored["subscription_id"] == subscription["id"]
    assert len(stored["signature_key"]) == 64
    # A restart (or a second process) finds it and creates nothing.
    keeper = hooked.services.sync.keeper
    assert keeper is not None
    assert await keeper.ensure()
    assert await keeper.ensure()
    assert len(hooked.close.webhooks) == 1
    assert hooked.close.count("POST", "/webhook/") == 1


async def test_a_paused_subscription_is_reactivated(hooked: Sandbox) -> None:
    subscription = hooked.close.webhooks[0]
    subscription["status"] = "paused"
    keeper = hooked.services.sync.keeper
    assert keeper is not None and await keeper.ensure()
    assert hooked.close.webhooks[0]["status"] == "active"
    assert len(hooked.close.webhooks) == 1


async def test_a_subscription_whose_key_is_unknown_is_replaced(hooked: Sandbox) -> None:
    await hooked.services.changes.put_state(
        STATE_KEY, {"url": "elsewhere"}, now=hooked.services.clock()
    )
    keeper = hooked.services.sync.keeper
    assert keeper is not None and await keeper.ensure()
    assert len(hooked.close.webhooks) == 1
    stored = await hooked.services.changes.get_state(STATE_KEY)
    assert stored is not None and stored["subscription_id"] == hooked.close.webhooks[0]["id"]


# --- what Slack shows ---------------------------------------------------------------------


async def test_change_in_close_updates_summary_and_replies_once_by_webhook(
    hooked: Sandbox,
) -> None:
    sb = hooked
    opportunity, details = await log_deal(sb, "Acme Corp 12k annual")
    channel, root = details.response["channel"], details.params["thread_ts"]
    sb.close.change_opportunity(opportunity["id"], {"value": 1500000, "status_id": "stat_proposal"})
    await wait_for(lambda: len(replies(sb, channel, root)) == 1)
    await settled(sb)
    reply = _text(replies(sb, channel, root)[0])
    assert "Bob Baker" in reply  # who changed it, by their Close name
    assert "Value" in reply and "15,000" in reply and "12,000" in reply
    assert "Status" in reply and "Proposal Sent" in reply
    summary = message(sb, channel, root)
    assert "15,000" in _text(summary) and "Proposal Sent" in _text(summary)
    # The details' fields follow too, and its buttons stay.
    shown = message(sb, channel, details.response["ts"])
    assert "15,000" in _text(shown), _text(shown)
    assert buttons(shown) == ["open_in_close", EDIT_ACTION_ID, WON_ACTION_ID, LOST_ACTION_ID]
    # Close redelivers (and the same delivery comes twice): nothing more is said.
    event = sb.close.events[-1]
    await sb.close.redeliver(event["id"])
    await sb.close.wait_deliveries_idle()
    await settled(sb)
    assert len(replies(sb, channel, root)) == 1


async def test_change_in_close_arrives_through_the_event_log(polling: Sandbox) -> None:
    sb = polling
    opportunity, details = await log_deal(sb, "Acme Corp 12k annual")
    channel, root = details.response["channel"], details.params["thread_ts"]
    sb.close.change_opportunity(opportunity["id"], {"confidence": 80}, automation=True)
    await wait_for(lambda: len(replies(sb, channel, root)) == 1)
    reply = _text(replies(sb, channel, root)[0])
    assert "An automation" in reply and "Confidence" in reply and "80%" in reply
    await read_again(sb)  # the 5-minute rescan finds the change again: still one reply
    await settled(sb)
    assert len(replies(sb, channel, root)) == 1


async def test_the_echo_of_the_apps_own_create_is_not_stored(polling: Sandbox) -> None:
    """Close's `created` event for a deal the app created carries nothing newer than Close's
    answer to the create: dropped on arrival. One Close merged a later change into is kept,
    as is a `created` event of a deal the app did not create."""
    sb = polling
    opportunity, _details = await log_deal(sb, "Acme Corp 12k annual")
    state = dict(opportunity)  # as Close answered the create

    def created(event_id: str, data: dict[str, Any]) -> CloseEvent:
        return CloseEvent(
            id=event_id,
            object_type="opportunity",
            object_id=data["id"],
            action="created",
            date_updated=data["date_updated"],
            data=data,
        )

    now = datetime.now(UTC)
    add = sb.services.changes.add
    assert await add([created("ev_echo", state)], source="poll", now=now) == 0
    later = (datetime.fromisoformat(state["date_updated"]) + timedelta(seconds=5)).isoformat()
    merged = {**state, "confidence": 90, "date_updated": later}
    assert await add([created("ev_merged", merged)], source="poll", now=now) == 1
    theirs = {**state, "id": "oppo_not_ours"}
    assert await add([created("ev_theirs", theirs)], source="poll", now=now) == 1


async def test_a_created_event_stamped_like_the_apps_own_create_with_other_data_is_kept(
    hooked_anywhere: Sandbox,
) -> None:
    """Stamped like Close's answer to the app's create but holding other data: not its echo
    (Close stamped two writes alike); the applier asks Close which state is current."""
    sb = hooked_anywhere
    opportunity, _details = await log_deal(sb, "Acme Corp 12k annual")
    state = dict(opportunity)
    now = datetime.now(UTC)

    def created(event_id: str, data: dict[str, Any]) -> CloseEvent:
        return CloseEvent(
            id=event_id,
            object_type="opportunity",
            object_id=data["id"],
            action="created",
            date_updated=data["date_updated"],
            data=data,
        )

    add = sb.services.changes.add
    assert await add([created("ev_echo", state)], source="poll", now=now) == 0
    tie = {**state, "confidence": 95}
    assert await add([created("ev_tie", tie)], source="poll", now=now) == 1


async def test_the_apps_own_won_is_told_once_not_again_from_closes_event(hooked: Sandbox) -> None:
    sb = hooked
    _opportunity, details = await log_deal(sb)
    channel, root = details.response["channel"], details.params["thread_ts"]
    await press(sb, details, WON_ACTION_ID)
    await wait_for(lambda: any("marked it" in _text(m) for m in sb.slack.thread(channel, root)))
    await sb.close.wait_deliveries_idle()
    await settled(sb)
    told = [m for m in sb.slack.thread(channel, root) if "marked it" in _text(m)]
    assert len(told) == 1
    assert replies(sb, channel, root) == []


async def test_an_edit_in_slack_and_a_change_in_close_are_told_alike_in_order(
    hooked: Sandbox,
) -> None:
    """One telling for both (bot/deals/telling.py): each change is one reply in the thread and
    the same reply under the deals-channel announcement, in the order they were made, and the
    summary and details show the newest; the change in Close starts where the edit left it."""
    sb = hooked
    opportunity, details = await log_deal(sb, "Acme Corp 12k annual")
    channel, root = details.response["channel"], details.params["thread_ts"]
    [announcement] = sb.slack.messages("C0GENERAL")
    view_id = await open_edit(sb, details)
    edit = sb.slack.mark()
    response = await sb.driver.submit_view(view_id, values={"value": "15k"})
    assert response.status_code == 200
    await wait_for(lambda: "Saved" in _text(sb.slack.views[view_id]))
    await sb.close.wait_deliveries_idle()
    await settled(sb)
    change = sb.slack.mark()
    sb.close.change_opportunity(opportunity["id"], {"value": 1800000})
    await wait_for(lambda: len(replies(sb, channel, root)) == 1)
    await sb.close.wait_deliveries_idle()
    await settled(sb)

    def touched(since: int, until: int | None = None) -> set[tuple[str, str, str]]:
        """Which messages a telling wrote: updated (channel, ts) or replied under."""
        return {
            (c.method, c.params["channel"], c.params.get("ts") or c.params.get("thread_ts"))
            for c in sb.slack.calls()[since:until]
            if c.ok and c.method in ("chat.update", "chat.postMessage")
        }

    # Both tellings update the same summary and details and reply in the same two threads.
    assert (
        touched(edit, change)
        == touched(change)
        == {
            ("chat.update", channel, root),
            ("chat.update", channel, details.response["ts"]),
            ("chat.postMessage", channel, root),
            ("chat.postMessage", "C0GENERAL", announcement["ts"]),
        }
    )

    def told(where: list[dict[str, Any]]) -> list[str]:
        lines = [(m.get("blocks") or [{}])[0].get("text", {}).get("text", "") for m in where]
        return [line for line in lines if "changed it" in line or "edited it" in line]

    in_thread = told(sb.slack.thread(channel, root))
    assert len(in_thread) == 2  # the edit's own event from Close is not told again
    edited, changed = in_thread
    assert "<@U0ALICE> edited it" in edited and "$12,000 annual → $15,000 annual" in edited
    assert "Bob Baker" in changed and "changed it in Close" in changed
    assert "$15,000 annual → $18,000 annual" in changed
    assert told(sb.slack.thread("C0GENERAL", announcement["ts"])) == in_thread
    assert "18,000" in _text(message(sb, channel, root))
    shown = message(sb, channel, details.response["ts"])
    assert "18,000" in _text(shown) and "15,000" not in _text(shown)
    assert buttons(shown) == ["open_in_close", EDIT_ACTION_ID, WON_ACTION_ID, LOST_ACTION_ID]


async def test_deleted_in_close_marks_the_summary_and_removes_the_buttons(hooked: Sandbox) -> None:
    sb = hooked
    opportunity, details = await log_deal(sb)
    channel, root = details.response["channel"], details.params["thread_ts"]
    sb.close.delete_opportunity(opportunity["id"])
    await wait_for(lambda: len(replies(sb, channel, root)) == 1)
    await settled(sb)
    assert "Bob Baker" in _text(replies(sb, channel, root)[0])
    summary = _text(message(sb, channel, root))
    assert "deleted in Close" in summary and "~" in summary
    assert buttons(message(sb, channel, details.response["ts"])) == ["open_in_close"]


async def test_a_late_older_delivery_never_rolls_the_summary_back(hooked: Sandbox) -> None:
    sb = hooked
    opportunity, details = await log_deal(sb, "Acme Corp 12k annual")
    channel, root = details.response["channel"], details.params["thread_ts"]
    sb.close.drop_deliveries(1)
    sb.close.change_opportunity(opportunity["id"], {"value": 2000000})
    older = sb.close.events[-1]["id"]
    sb.close.change_opportunity(opportunity["id"], {"value": 3000000})
    await wait_for(lambda: len(replies(sb, channel, root)) == 1)
    await settled(sb)
    await sb.close.redeliver(older)  # the older change turns up after the newer one
    await sb.close.wait_deliveries_idle()
    await settled(sb)
    summary = _text(message(sb, channel, root))
    assert "30,000" in summary and "20,000" not in summary
    told = replies(sb, channel, root)
    assert len(told) == 1 and "$12,000 annual → $30,000 annual" in _text(told[0])


async def test_deliveries_received_out_of_order_are_told_in_closes_order(hooked: Sandbox) -> None:
    sb = hooked
    opportunity, details = await log_deal(sb, "Acme Corp 12k annual")
    channel, root = details.response["channel"], details.params["thread_ts"]
    sb.close.hold_deliveries()
    sb.close.change_opportunity(opportunity["id"], {"value": 2000000})
    sb.close.change_opportunity(opportunity["id"], {"value": 3000000})
    sb.close.release_deliveries(reverse=True)  # the newer change arrives first
    await sb.close.wait_deliveries_idle()
    await settled(sb)
    assert "30,000" in _text(message(sb, channel, root))
    told = [_text(m) for m in replies(sb, channel, root)]
    assert len(told) in (1, 2)  # one if the newer was applied before the older arrived
    assert "→ $30,000 annual" in told[-1]
    if len(told) == 2:
        assert "$12,000 annual → $20,000 annual" in told[0]


@pytest.mark.parametrize("arrival", ["in order", "newest first"])
async def test_two_changes_close_stamped_alike_end_showing_what_close_has_now(
    hooked_anywhere: Sandbox, arrival: str
) -> None:
    """Close gave two changes the same `date_updated`: the second is not dropped as "not
    newer" — the bot reads Close (with the key) and Slack ends showing what Close has now."""
    sb = hooked_anywhere
    opportunity, details = await log_deal(sb, "Acme Corp 12k annual")
    channel, root = details.response["channel"], details.params["thread_ts"]
    if arrival == "newest first":
        sb.close.hold_deliveries()
    with sb.close.same_instant():
        sb.close.change_opportunity(opportunity["id"], {"value": 2000000})
        sb.close.change_opportunity(opportunity["id"], {"value": 3000000})
    first, second = sb.close.events[-2:]
    assert first["date_updated"] == second["date_updated"] and first["id"] != second["id"]
    path = f"/opportunity/{opportunity['id']}/"
    start, reads = len(sb.close.requests), sb.close.count("GET", path)
    if arrival == "newest first":
        sb.close.release_deliveries(reverse=True)
    await wait_for(lambda: "30,000" in _text(message(sb, channel, root)))
    await sb.close.wait_deliveries_idle()
    await settled(sb)
    summary = _text(message(sb, channel, root))
    assert "30,000" in summary and "20,000" not in summary
    shown = _text(message(sb, channel, details.response["ts"]))
    assert "30,000" in shown and "20,000" not in shown
    told = [_text(m) for m in replies(sb, channel, root)]
    assert told and "→ $30,000 annual" in told[-1]
    # The tie was settled by one read of the opportunity in Close, with the org's key.
    tie_reads = [r for r in sb.close.requests[start:] if r.method == "GET" and r.path == path]
    assert len(tie_reads) == 1
    assert tie_reads[0].headers.get("authorization", "").startswith("Basic ")
    counts = await sb.services.changes.counts()
    assert counts.get(ChangeState.APPLIED.value, 0) + counts.get(ChangeState.SKIPPED.value, 0) >= 2
    # The same delivery again (same stamp, same data as shown) stays a no-op: no read, no reply.
    await sb.close.redeliver(second["id"])
    await sb.close.wait_deliveries_idle()
    await settled(sb)
    assert [_text(m) for m in replies(sb, channel, root)] == told
    assert sb.close.count("GET", path) == reads + 1


async def test_webhook_refuses_unsigned_forged_stale_and_junk_never_a_5xx(hooked: Sandbox) -> None:
    sb = hooked
    url = sb.bot.url + "close/webhook"
    stored = await sb.services.changes.get_state(STATE_KEY)
    assert stored is not None
    key = str(stored["signature_key"])
    now = str(int(asyncio.get_running_loop().time() * 0 + __import__("time").time()))

    def signed(body: bytes, stamp: str = now, secret: str = key) -> dict[str, str]:
        return {
            "close-sig-timestamp": stamp,
            "close-sig-hash": sign(secret, stamp, body),
            "content-type": "application/json",
        }

    event = {
        "id": "ev_test",
        "object_type": "opportunity",
        "object_id": "oppo_nothing",
        "action": "updated",
        "date_updated": "2026-11-30T12:00:00.000000+00:00",
    }
    good = json.dumps({"subscription_id": "whsub_x", "event": event}).encode()
    stale = str(int(now) - 600)
    async with httpx.AsyncClient() as client:
        cases = [
            (good, {"content-type": "application/json"}, 401),
            (good, signed(good, secret="00" * 32), 401),
            (good, signed(good, stamp=stale), 401),
            (good, {**signed(good), "close-sig-timestamp": "soon"}, 401),
            (b"{not json", signed(b"{not json"), 400),
            (b"[1, 2]", signed(b"[1, 2]"), 400),
            (b"x" * (1024 * 1024), signed(b"x" * (1024 * 1024)), 413),
        ]
        for body, headers, status in cases:
            response = await client.post(url, content=body, headers=headers)
            assert response.status_code == status, (body[:20], response.text)
        lead = json.dumps({"event": {**event, "object_type": "lead"}}).encode()
        response = await client.post(url, content=lead, headers=signed(lead))
        assert response.status_code == 200 and response.json()["new"] == 0
        response = await client.post(url, content=good, headers=signed(good))
        assert response.status_code == 200 and response.json()["new"] == 1
        response = await client.post(url, content=good, headers=signed(good))
        assert response.status_code == 200 and response.json()["new"] == 0  # deduplicated


async def test_won_in_close_is_announced_in_the_deals_channel_once(hooked: Sandbox) -> None:
    sb = hooked
    opportunity, _details = await log_deal(sb)
    sb.close.duplicate_deliveries(5)
    sb.close.change_opportunity(opportunity["id"], {"status_id": "stat_won"})
    # And one the app never logged, won in Close.
    other = sb.close.create_opportunity_as(
        "lead_globex", {"value": 500000, "custom.cf_source": "Inbound"}
    )
    sb.close.change_opportunity(other["id"], {"status_id": "stat_won"})

    await wait_for(lambda: len(wins(sb)) == 2)
    await sb.close.wait_deliveries_idle()
    await settled(sb)
    assert len(wins(sb)) == 2
    assert any("Acme Corp" in _text(m) for m in wins(sb))
    assert any("Globex" in _text(m) for m in wins(sb))


# --- App Home, doctor, history --------------------------------------------------------------


async def test_app_home_shows_what_close_has_now_without_asking_close(hooked: Sandbox) -> None:
    sb = hooked
    changed, _ = await log_deal(sb, "Acme Corp 12k annual")
    deleted, _ = await log_deal(sb, "Globex 40k one-time")
    sb.close.change_opportunity(changed["id"], {"value": 1500000, "status_id": "stat_proposal"})
    sb.close.delete_opportunity(deleted["id"])
    await sb.close.wait_deliveries_idle()
    await settled(sb)

    # Reads of one opportunity (Home's *This week* is one list read, `GET /opportunity/`).
    def opportunity_reads() -> int:
        return sum(
            1
            for r in sb.close.requests
            if r.method == "GET"
            and r.path.startswith("/opportunity/")
            and r.path != "/opportunity/"
        )

    before = opportunity_reads()
    shown = sections(await published_home(sb, "U0ALICE"))
    assert opportunity_reads() == before  # from the synced views
    assert any("Globex" in line and "deleted in Close" in line for line in shown)
    [acme] = [line for line in shown if "Acme" in line]
    assert "15,000" in acme and "Proposal Sent" in acme


async def test_doctor_reports_the_sync_mode_subscription_and_last_change(hooked: Sandbox) -> None:
    sb = hooked
    opportunity, _ = await log_deal(sb)
    sb.close.change_opportunity(opportunity["id"], {"confidence": 90})
    await sb.close.wait_deliveries_idle()
    await settled(sb)
    out = io.StringIO()
    await run_doctor(sb.settings, out=out)
    text = out.getvalue()
    assert f"Mode: webhook at {sb.settings.close_webhook_url}" in text
    assert f"Close webhook {sb.close.webhooks[0]['id']}: active, signing key stored" in text
    assert f"Last change applied: updated of {opportunity['id']} (told: Confidence)" in text
    sb.close.webhooks[0]["status"] = "paused"
    out = io.StringIO()
    assert await run_doctor(sb.settings, out=out) == 1
    assert "is paused" in out.getvalue()


async def test_history_lists_the_changes_applied_to_each_opportunity(hooked: Sandbox) -> None:
    sb = hooked
    opportunity, _ = await log_deal(sb)
    sb.close.change_opportunity(opportunity["id"], {"confidence": 90})
    sb.close.change_opportunity(opportunity["id"], {"status_id": "stat_proposal"})
    await sb.close.wait_deliveries_idle()
    await settled(sb)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        await print_history(sb.settings, user=None, limit=5, as_json=True)
    [entry] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [c["outcome"] for c in entry["changes"]] == ["told: Confidence", "told: Status"]
    assert {c["user_id"] for c in entry["changes"]} == {"user_bob"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        await print_history(sb.settings, user=None, limit=5)
    assert out.getvalue().count("in Close by user_bob (webhook)") == 2


async def test_a_deal_won_from_slack_is_celebrated_once_too(hooked: Sandbox) -> None:
    sb = hooked
    _opportunity, details = await log_deal(sb)
    await press(sb, details, WON_ACTION_ID)
    await wait_for(lambda: len(wins(sb)) == 1)
    await sb.close.wait_deliveries_idle()
    await settled(sb)  # Close's event of that Won came back: no second cheer
    [cheer] = wins(sb)
    assert "Marked won from Slack by <@U0ALICE>" in _text(cheer)


async def test_finished_changes_are_forgotten_after_a_week(hooked: Sandbox) -> None:
    sb = hooked
    opportunity, _ = await log_deal(sb)
    sb.close.change_opportunity(opportunity["id"], {"confidence": 90})
    await sb.close.wait_deliveries_idle()
    await settled(sb)
    store = sb.services.changes
    assert await store.prune(before=sb.services.clock() - timedelta(days=1)) == 0
    assert await store.prune(before=sb.services.clock() + timedelta(days=8)) >= 1
    assert await store.counts() == {}


async def test_each_process_type_reads_the_event_log_at_its_own_pace(tmp_path: Path) -> None:
    """serve with PUBLIC_URL: webhook, log as backstop; worker beside it: backstop only;
    Socket Mode or no PUBLIC_URL: the log at CLOSE_EVENTS_POLL_SECONDS."""
    base = {
        "close_url": "http://127.0.0.1:9/api/v1/",
        "slack_url": "http://127.0.0.1:9/api/",
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'pace.sqlite3'}",
        "close_events_poll_seconds": 30,
    }
    cases = [
        ({"public_url": "https://bot.example.com"}, True, False, "webhook", 300),
        ({"public_url": "https://bot.example.com"}, False, True, "poll", 300),
        ({"public_url": "https://bot.example.com"}, False, False, "poll", 30),
        ({}, True, False, "poll", 30),
        ({"close_events_poll_seconds": 0}, True, False, "off", None),
    ]
    for extra, http, elsewhere, mode, every in cases:
        services = Services.create(sandbox_settings(**{**base, **extra}))
        try:
            services.sync.start(serving_http=http, webhook_elsewhere=elsewhere)
            assert services.sync.mode == mode
            poller = services.sync.poller
            assert (poller.every_seconds if poller else None) == every, (extra, http, elsewhere)
        finally:
            await services.sync.stop()
            await services.engine.dispose()
