"""Owner alerts (issue #24 part 4) over real HTTP against the Slack and Close simulators, on
SQLite and PostgreSQL: a change someone else makes in Close to your deal (or assigning one to
you) comes in one DM naming each field old → new and who, every change within the window in
that one DM; never for your own change, nor the app's own write, nor with alerts off; one DM
however many app instances note the change. Then the pure parts: what counts as an alert, and
the DM's Block Kit.

Changes reach the bot by webhook, as in production. The app's clock is real time plus an
offset the test moves on, so a 60-second window closes at once without waiting a minute.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text as sql

from bot.alerts.derive import alert_for
from bot.alerts.notes import ALERT, OPEN
from bot.app import build_app
from bot.blocks.alerts import Alert, alert_line, alert_message, merged
from bot.blocks.changes import FieldChange
from bot.blocks.messages import LOST_ACTION_ID, WON_ACTION_ID
from bot.deals.models import ReplyTarget
from bot.schedule.store import ScheduledSend
from bot.services import Services
from bot.sync.events import CloseEvent
from bot.sync.store import ChangeState
from bot.sync.webhook import STATE_KEY
from bot.transport.http import create_http_app
from sandbox import blockkit
from sandbox.close_sim import CloseSimulator
from sandbox.server import start_server
from sandbox.slack_sim import Call, SlackSimulator
from sandbox.stack import CLOSE_API_KEY, Sandbox, running_sandbox
from tests.flows import REQUIRED_CUSTOM, wait_until
from tests.test_close_person import connect
from tests.test_confirmation_actions import log_deal, press
from tests.test_nudges import texts

WINDOW = timedelta(seconds=60)
CLOSE_APP_URL = "https://app.close.com/"


class Clock:
    """Real time, plus an offset the test moves on (Close's webhook stamps stay fresh)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def pass_window(self) -> None:
        self.offset += WINDOW + timedelta(seconds=1)


@asynccontextmanager
async def stack(clock: Clock, database_url: str, **overrides: Any) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        database_url=database_url,
        clock=clock,
        webhook=True,
        alert_window_seconds=60,
        **overrides,
    ) as sb:
        # The subscription is set up in the background at start.
        await wait_until(lambda: sb.services.changes.get_state(STATE_KEY))
        yield sb


def deal(sb: Sandbox, owner: str, lead_id: str = "lead_acme", **fields: Any) -> str:
    """An opportunity its owner made in Close ($12,000 annual, 60 %): no alert to anyone."""
    values = {
        "status_id": "stat_proposal",
        "value": 1_200_000,
        "value_period": "annual",
        "confidence": 60,
        **REQUIRED_CUSTOM,
        **fields,
    }
    return str(sb.close.create_opportunity_as(lead_id, values, user_id=owner)["id"])


async def settled(sb: Sandbox) -> None:
    """Every change Close has made so far is delivered, and applied or skipped."""
    await sb.close.wait_deliveries_idle(10.0)

    async def done() -> bool:
        counts = await sb.services.changes.counts()
        ended = (ChangeState.APPLIED.value, ChangeState.SKIPPED.value)
        return all(state in ended for state, n in counts.items() if n)

    await wait_until(done, timeout=10.0)


def dms(slack: SlackSimulator, user: str) -> list[Call]:
    return [c for c in slack.calls("chat.postMessage") if c.ok and c.params.get("channel") == user]


async def window(sb: Sandbox, user: str) -> ScheduledSend:
    """`user`'s open alert window (waited for: the change is noted as it is applied)."""

    async def found() -> ScheduledSend | None:
        return await open_window(sb, user)

    send: ScheduledSend = await wait_until(found, timeout=10.0)
    return send


async def open_window(sb: Sandbox, user: str) -> ScheduledSend | None:
    return await sb.services.scheduled_sends.find(ALERT, user, OPEN)


async def finished(sb: Sandbox, send_id: str) -> ScheduledSend:
    async def ended() -> ScheduledSend | None:
        send = await sb.services.scheduled_sends.get(send_id)
        return send if send is not None and send.state != "pending" else None

    done: ScheduledSend = await wait_until(ended, timeout=10.0)
    return done


def dm_text(sb: Sandbox, send: ScheduledSend) -> str:
    assert send.message_channel and send.message_ts
    [message] = [m for m in sb.slack.messages(send.message_channel) if m["ts"] == send.message_ts]
    return texts(message)


async def test_a_change_by_someone_else_is_one_dm_naming_each_field_and_who(
    database_url: str,
) -> None:
    clock = Clock()
    async with stack(clock, database_url) as sb:
        opp = deal(sb, "user_carol")
        sb.close.change_opportunity(opp, {"value": 1_500_000, "confidence": 80}, user_id="user_bob")
        send = await window(sb, "U0CAROL")
        await settled(sb)
        assert dms(sb.slack, "U0CAROL") == []  # the window is open: nothing sent yet

        clock.pass_window()
        sent = await finished(sb, send.id)
        assert sent.state == "sent"
        [dm] = dms(sb.slack, "U0CAROL")
        text = dm_text(sb, sent)
        assert "Value $12,000 annual → $15,000 annual" in text
        assert "Confidence 60% → 80%" in text
        assert "by *Bob Baker*" in text
        assert "Acme" in text and "https://app.close.com/lead/lead_acme/" in text
        assert blockkit.problems({"blocks": dm.params["blocks"]}, surface="message") == []


async def test_changes_within_the_window_go_in_one_dm_and_a_later_one_opens_another(
    database_url: str,
) -> None:
    clock = Clock()
    async with stack(clock, database_url) as sb:
        acme = deal(sb, "user_carol")
        globex = deal(sb, "user_carol", "lead_globex")
        own = deal(sb, "user_carol", "lead_umbrella")
        sb.close.change_opportunity(acme, {"confidence": 90}, user_id="user_bob")
        # Her own change is no news to her: never in the DM.
        sb.close.change_opportunity(own, {"confidence": 10}, user_id="user_carol")
        sb.close.change_opportunity(globex, {"status_id": "stat_demo"}, user_id="user_alice")
        send = await window(sb, "U0CAROL")
        await settled(sb)

        clock.pass_window()
        sent = await finished(sb, send.id)
        assert len(dms(sb.slack, "U0CAROL")) == 1
        text = dm_text(sb, sent)
        assert "2 changes to your deals" in text
        assert "Confidence 60% → 90% — by *Bob Baker*" in text
        assert "Status Proposal Sent → Demo Scheduled" in text and "by *Alice Anders*" in text
        assert "Umbrella" not in text and "60% → 10%" not in text

        # After the DM went, the next change opens a window of its own.
        sb.close.change_opportunity(acme, {"confidence": 95}, user_id="user_bob")
        later = await window(sb, "U0CAROL")
        assert later.id != send.id
        clock.pass_window()
        second = await finished(sb, later.id)
        assert len(dms(sb.slack, "U0CAROL")) == 2
        assert "Confidence 90% → 95%" in dm_text(sb, second)
        assert "Demo" not in dm_text(sb, second)


async def test_the_owners_own_change_and_the_apps_own_write_send_nothing(
    database_url: str,
) -> None:
    clock = Clock()
    async with stack(clock, database_url) as sb:
        opp = deal(sb, "user_carol")
        sb.close.change_opportunity(opp, {"value": 1_300_000}, user_id="user_carol")
        await settled(sb)
        assert await open_window(sb, "U0CAROL") is None
        # The owner's Won from the app (a nudge's tap on a deal not logged here) goes to Close
        # with the key, as its user (Alice): its echo is the app's own write, not news.
        answer = ReplyTarget(user_id="U0CAROL", channel_id="U0CAROL")
        after = await sb.services.confirmation_actions.change_opportunity(answer, opp, "won")
        assert after is not None and after.status_type == "won"
        await settled(sb)
        assert sb.close.events[-1]["user_id"] == "user_alice"  # the key's user made it
        assert await open_window(sb, "U0CAROL") is None
        assert dms(sb.slack, "U0CAROL") == []


async def test_alerts_off_sends_nothing_before_or_at_the_send(database_url: str) -> None:
    clock = Clock()
    async with stack(clock, database_url) as sb:
        opp = deal(sb, "user_carol")
        sb.close.change_opportunity(opp, {"confidence": 70}, user_id="user_bob")
        send = await window(sb, "U0CAROL")
        await settled(sb)
        # Turned off while the window is open: the send is skipped, nothing posted.
        await sb.driver.slash_command("alerts off", user_id="U0CAROL")
        await wait_until(lambda: _alerts_off(sb, "U0CAROL"))
        clock.pass_window()
        skipped = await finished(sb, send.id)
        assert skipped.state == "skipped" and skipped.error == "alerts off"
        # Off already when Close changes the deal: not even a window.
        sb.close.change_opportunity(opp, {"confidence": 75}, user_id="user_bob")
        await settled(sb)
        assert await open_window(sb, "U0CAROL") is None
        assert dms(sb.slack, "U0CAROL") == []


async def _alerts_off(sb: Sandbox, user: str) -> bool:
    return not (await sb.services.people.get(user)).alerts


async def test_an_owner_with_no_slack_account_gets_nothing_and_it_is_logged(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    async with stack(clock, database_url) as sb:
        # Dave (no longer active in Close) has no Slack account with his Close email.
        fields = {"status_id": "stat_proposal", "confidence": 60, **REQUIRED_CUSTOM}
        opp = sb.close.seed_opportunity("lead_acme", fields, user_id="user_dave")["id"]
        caplog.set_level("INFO", logger="bot.alerts.notes")
        sb.close.change_opportunity(opp, {"confidence": 70}, user_id="user_bob")
        await settled(sb)
        assert "its owner user_dave has no Slack user, no alert" in caplog.text
        assert await rows(sb, "SELECT count(*) FROM alert_changes") == 0
        assert await rows(sb, "SELECT count(*) FROM scheduled_sends") == 0


async def test_a_deal_assigned_to_you_tells_you_who_assigned_it(database_url: str) -> None:
    clock = Clock()
    async with stack(clock, database_url) as sb:
        opp = deal(sb, "user_alice")
        sb.close.change_opportunity(opp, {"user_id": "user_carol"}, user_id="user_bob")
        send = await window(sb, "U0CAROL")
        clock.pass_window()
        sent = await finished(sb, send.id)
        text = dm_text(sb, sent)
        assert "assigned to you — by *Bob Baker*" in text
        assert "Acme" in text


async def test_a_change_made_through_the_app_by_someone_else_alerts_the_owner_once(
    database_url: str,
) -> None:
    clock = Clock()
    async with stack(clock, database_url, admin_user_ids=["U0BOB"]) as sb:
        opportunity, details = await log_deal(sb)  # Alice's deal, logged by her
        await press(sb, details, WON_ACTION_ID, user_id="U0ALICE")  # her own: no news
        await wait_until(lambda: status_type(sb, opportunity["id"]) == "won")
        await press(sb, details, LOST_ACTION_ID, user_id="U0BOB")  # an admin's
        send = await window(sb, "U0ALICE")
        await settled(sb)  # Close's echoes of both: the app's own writes, not noted again
        assert await rows(sb, "SELECT count(*) FROM alert_changes") == 1
        clock.pass_window()
        sent = await finished(sb, send.id)
        text = dm_text(sb, sent)
        assert "Status Won → Lost — by <@U0BOB>" in text
        assert len(dms(sb.slack, "U0ALICE")) == 1


async def test_a_window_open_when_the_app_stops_is_sent_once_when_it_is_back(
    database_url: str,
) -> None:
    clock = Clock()
    async with stack(clock, database_url) as sb:
        opp = deal(sb, "user_carol")
        sb.close.change_opportunity(opp, {"confidence": 65}, user_id="user_bob")
        send = await window(sb, "U0CAROL")
        await settled(sb)
    clock.pass_window()  # it fell due while the app was down
    async with stack(clock, database_url) as back:
        sent = await finished(back, send.id)
        assert sent.state == "sent"
        assert "Confidence 60% → 65%" in dm_text(back, sent)
        assert len(dms(back.slack, "U0CAROL")) == 1


def status_type(sb: Sandbox, opportunity_id: str) -> str | None:
    found = sb.close.org.find(sb.close.org.opportunities, opportunity_id)
    return None if found is None else found.get("status_type")


async def test_two_app_instances_noting_the_same_change_send_one_dm(database_url: str) -> None:
    clock = Clock()
    async with stack(clock, database_url) as sb:
        other = Services.create(sb.settings, clock=clock)
        server = await start_server(create_http_app(other, build_app(sb.settings, other)))
        try:
            await other.catalog.wait_loaded(5.0)
            opp = deal(sb, "user_carol")
            sb.close.change_opportunity(opp, {"confidence": 85}, user_id="user_bob")
            await settled(sb)
            # Both instances note the same event again, at once (a redelivery taken by each,
            # a claim lost mid-change): one change kept, one window, one DM.
            event = CloseEvent.model_validate(sb.close.events[-1])
            assert other.alerts is not None and sb.services.alerts is not None
            await asyncio.gather(other.alerts.note(event), sb.services.alerts.note(event))
            # One change kept, one window stored, whoever noted it.
            assert await rows(sb, "SELECT count(*) FROM alert_changes") == 1
            send = await window(sb, "U0CAROL")
            clock.pass_window()
            other.worker.kick()  # both runners look for it at once
            sb.services.worker.kick()
            sent = await finished(sb, send.id)
            assert sent.state == "sent"
            assert await rows(sb, "SELECT count(*) FROM scheduled_sends WHERE kind = 'alert'") == 1
            assert len(dms(sb.slack, "U0CAROL")) == 1
            assert dm_text(sb, sent).count("Confidence 60% → 85%") == 1
        finally:
            await server.stop()


async def rows(sb: Sandbox, query: str) -> int:
    async with sb.services.engine.connect() as connection:
        return int((await connection.execute(sql(query))).scalar_one())


# --- pure: what counts as an alert ----------------------------------------------------------


class _Names:
    def status_label(self, status_id: str) -> str | None:
        return {"stat_proposal": "Proposal", "stat_demo": "Demo"}.get(status_id)

    def user_name(self, user_id: str) -> str | None:
        return {"user_jane": "Jane Doe", "user_rep": "Rita Rep"}.get(user_id)

    def field_names(self) -> dict[str, str]:
        return {"cf_source": "Source"}


def _opportunity(**fields: Any) -> dict[str, Any]:
    return {
        "id": "oppo_1",
        "lead_id": "lead_acme",
        "lead_name": "Acme",
        "status_id": "stat_proposal",
        "status_label": "Proposal",
        "status_type": "active",
        "value": 1_200_000,
        "value_currency": "USD",
        "value_period": "one_time",
        "confidence": 60,
        "user_id": "user_rep",
        "user_name": "Rita Rep",
        "date_updated": "2026-12-07T10:00:00.000000+00:00",
        **fields,
    }


def _event(
    *,
    by: str | None,
    data: dict[str, Any] | None,
    previous: dict[str, Any] | None = None,
    action: str = "updated",
    object_type: str = "opportunity",
) -> CloseEvent:
    return CloseEvent(
        id="ev_1",
        object_type=object_type,
        object_id="oppo_1",
        action=action,
        date_updated="2026-12-07T10:00:00.000000+00:00",
        user_id=by,
        changed_fields=sorted(previous or {}),
        previous_data=previous,
        data=data,
    )


@pytest.mark.parametrize(
    ("event", "kind", "fields"),
    [
        (
            _event(
                by="user_jane",
                data=_opportunity(value=1_500_000, confidence=80),
                previous={"value": 1_200_000, "confidence": 60},
            ),
            "changed",
            [("Value", "$12,000 one-time", "$15,000 one-time"), ("Confidence", "60%", "80%")],
        ),
        (  # the old status named by the catalog when Close gives only its id
            _event(
                by=None,
                data=_opportunity(status_id="stat_demo", status_label="Demo"),
                previous={"status_id": "stat_proposal"},
            ),
            "changed",
            [("Status", "Proposal", "Demo")],
        ),
        (
            _event(
                by="user_jane",
                data=_opportunity(),
                previous={"user_id": "user_jane", "user_name": "Jane Doe"},
            ),
            "assigned",
            [("Owner", "Jane Doe", "Rita Rep")],
        ),
        (_event(by="user_jane", data=_opportunity(), action="created"), "assigned", []),
        (_event(by="user_jane", data=_opportunity(), action="deleted"), "deleted", []),
    ],
)
def test_what_is_news_to_the_owner(
    event: CloseEvent, kind: str, fields: list[tuple[str, str, str]]
) -> None:
    alert = alert_for(event, _Names())
    assert alert is not None
    assert alert.owner == "user_rep" and alert.kind == kind
    assert [(f.name, f.old, f.new) for f in alert.fields] == fields
    assert alert.by_name == ("Jane Doe" if event.user_id else None)


@pytest.mark.parametrize(
    "event",
    [
        _event(by="user_rep", data=_opportunity(confidence=80), previous={"confidence": 60}),
        _event(by="user_jane", data=None, previous={"confidence": 60}),  # data left out
        _event(by="user_jane", data=_opportunity(), previous={"date_updated": "x"}),  # nothing read
        _event(by="user_jane", data={"id": "stat_1"}, object_type="status_change.opportunity"),
        _event(by="user_jane", data=_opportunity(user_id=None), previous={"confidence": 1}),
    ],
)
def test_what_is_not_news(event: CloseEvent) -> None:
    assert alert_for(event, _Names()) is None


# --- pure: the DM ---------------------------------------------------------------------------


def _alert(event_id: str, at: int, **fields: Any) -> Alert:
    values: dict[str, Any] = {
        "event_id": event_id,
        "at": datetime(2026, 12, 7, 10, 0, at, tzinfo=UTC),
        "opportunity_id": "oppo_1",
        "lead_id": "lead_acme",
        "lead_name": "Acme <Corp>",
        "owner": "user_rep",
        "kind": "changed",
        "by": "user_jane",
        "by_name": "Jane Doe",
        **fields,
    }
    return Alert.model_validate(values)


def test_a_line_names_the_deal_as_a_link_each_field_and_who() -> None:
    alert = _alert(
        "ev_1",
        0,
        fields=[
            FieldChange(name="Value", old="$12,000", new="$15,000"),
            FieldChange(name="Confidence", old="60%", new="80%"),
        ],
    )
    assert alert_line(alert, close_app_url=CLOSE_APP_URL) == (
        "*<https://app.close.com/lead/lead_acme/|Acme &lt;Corp&gt;>* — Value $12,000 → $15,000"
        " · Confidence 60% → 80% — by *Jane Doe*"
    )
    assigned = _alert(
        "ev_2", 1, kind="assigned", by=None, by_name=None, fields=[FieldChange(name="Owner")]
    )
    assert alert_line(assigned, close_app_url=CLOSE_APP_URL).endswith(
        "— assigned to you — by an automation"
    )


def test_a_field_changed_twice_reads_first_old_to_last_new_and_merged_events_count_once() -> None:
    first = _alert("ev_1", 0, fields=[FieldChange(name="Value", old="$1", new="$2")])
    # Close merged a later change into the same event: its newer copy replaces the first.
    merged_copy = _alert(
        "ev_1",
        5,
        fields=[
            FieldChange(name="Value", old="$1", new="$2"),
            FieldChange(name="Confidence", old="1%", new="2%"),
        ],
    )
    then = _alert("ev_2", 9, fields=[FieldChange(name="Value", old="$2", new="$3")])
    other_deal = _alert("ev_3", 7, opportunity_id="oppo_2", lead_name="Globex")
    out = merged([then, first, merged_copy, other_deal])
    assert [a.opportunity_id for a in out] == ["oppo_1", "oppo_2"]
    assert [(f.name, f.old, f.new) for f in out[0].fields] == [
        ("Value", "$1", "$3"),
        ("Confidence", "1%", "2%"),
    ]


def test_the_dm_is_valid_block_kit_within_slacks_limits() -> None:
    many = [_alert(f"ev_{i}", i % 60, opportunity_id=f"oppo_{i}") for i in range(80)]
    message = alert_message(many, close_app_url=CLOSE_APP_URL)
    assert len(message.blocks) <= 50
    assert "80 changes to your deals in Close" in message.text
    assert "…and 34 more" in texts(message.model_dump())
    assert blockkit.problems({"blocks": message.blocks}, surface="message") == []
    one = alert_message(many[:1], close_app_url=CLOSE_APP_URL)
    assert one.text == "Jane Doe changed Acme <Corp> in Close"


async def test_an_owner_known_only_by_their_close_connection_is_alerted(tmp_path: Path) -> None:
    """Dave's Slack email is not his Close login's: his Close connection says who he is."""
    close = CloseSimulator(api_key=CLOSE_API_KEY)
    close.org.users.append(
        {
            "id": "user_diaz",
            "email": "d.diaz@login.example",
            "first_name": "Dave",
            "last_name": "Diaz",
            "date_created": "2024-01-02T12:00:00+00:00",
        }
    )
    clock = Clock()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    async with stack(clock, database_url, close=close, oauth=True, close_access="either") as sb:
        await connect(sb, "U0DAVE", "user_diaz")
        opp = deal(sb, "user_diaz")
        sb.close.change_opportunity(opp, {"confidence": 90}, user_id="user_bob")
        send = await window(sb, "U0DAVE")
        clock.pass_window()
        sent = await finished(sb, send.id)
        assert sent.state == "sent"
        assert "Confidence 60% → 90%" in dm_text(sb, sent)
