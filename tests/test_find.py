"""`/opportunity find <text>` (issue 24 part 1): the matching leads, privately, each with its
status and open opportunities and *Log an opportunity*, *Open in Close*, *Share*.

End to end over real HTTP: the Slack driver sends the signed command and button clicks to the
bot under uvicorn; the bot reads the Close simulator (as the person) and answers through the
command's response_url on the Slack simulator. The Block Kit builders are table-tested below.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot.blocks.find import (
    FIND_LOG_ACTION_ID,
    FIND_SHARE_ACTION_ID,
    SHARE_REFUSED,
    USAGE,
    FindRef,
    close_rate_limited,
    close_unreachable,
    find_answer,
    find_usage,
    share_failed,
    shared_card,
)
from bot.blocks.format import format_date
from bot.blocks.messages import OPEN_IN_CLOSE_ACTION_ID, Message
from bot.blocks.previews import PREVIEW_LOG_ACTION_ID
from bot.close.models import Lead, LeadWithOpportunities, Opportunity
from bot.leads.find import FindResult, FoundLead
from bot.listeners.find import NOT_A_CLOSE_USER, find_text
from sandbox.close_sim import CloseSimulator
from sandbox.slack_driver import SlackDriver
from sandbox.slack_sim import Call, SlackSimulator
from sandbox.stack import BOT_TOKEN, CLOSE_API_KEY, SIGNING_SECRET, Sandbox, running_sandbox
from tests.blockkit_walk import HOSTILE, injected, limit_problems
from tests.flows import submit, wait_opportunities, wait_until
from tests.oauth_flows import button_url, command_answer, connect_link, consent
from tests.process import APP_TOKEN, Bot

APP = "https://app.close.com/"
SHARED = "C0ACME"  # #acme-shared: shared with Acme's organization


def seed(sb: Sandbox, lead_id: str, **fields: Any) -> dict[str, Any]:
    """An opportunity made in Close by a person (an open $12,000 annual one by default)."""
    body = {
        "value": 1_200_000,
        "value_period": "annual",
        "status_id": "stat_proposal",
        "confidence": 60,
        "date_won": "2031-01-15",
        "custom.cf_source": "Inbound",
        **fields,
    }
    return sb.close.create_opportunity_as(lead_id, body)


async def find(
    sb: Sandbox, text: str, *, user_id: str = "U0ALICE", channel_id: str = "C0SALES"
) -> dict[str, Any]:
    """Run `/opportunity find …`; the bot's private answer (the ephemeral it sent through the
    command's response_url), checked against Slack's Block Kit limits."""
    mark = sb.slack.mark()
    result = await sb.driver.slash_command(text, user_id=user_id, channel_id=channel_id)
    assert result.response.status_code == 200, result.response.text
    assert not result.response.content.strip()  # a bare ack: the answer comes after it
    rid = sb.slack.response_url_id(result.response_url)
    call = await sb.slack.wait_for("response_url", lambda c: c.params["id"] == rid, since=mark)
    assert call.ok, call.response
    body: dict[str, Any] = call.params["body"]
    assert body["response_type"] == "ephemeral"
    assert limit_problems(body, surface="message") == []
    return [e for e in sb.slack.ephemerals(channel_id, user_id) if e["text"] == body["text"]][-1]


def texts(message: dict[str, Any]) -> str:
    """Every mrkdwn text of a message's blocks, joined."""
    found: list[str] = []
    for block in message.get("blocks") or []:
        if isinstance(block.get("text"), dict):
            found.append(block["text"]["text"])
        for element in block.get("elements") or []:
            if element.get("type") == "mrkdwn":
                found.append(element["text"])
    return "\n".join(found)


def buttons(message: dict[str, Any], block_id: str) -> dict[str, dict[str, Any]]:
    """The buttons of one actions block, by action_id."""
    [block] = [b for b in message["blocks"] if b.get("block_id") == block_id]
    return {element["action_id"]: element for element in block["elements"]}


def sent_view(call: Call) -> dict[str, Any]:
    """The view the bot sent with views.open (as it went over the wire)."""
    view = call.params["view"]
    return json.loads(view) if isinstance(view, str) else dict(view)


def lead_block(view: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in view["blocks"] if b.get("block_id") == "lead")


async def press(sb: Sandbox, shown: dict[str, Any], action_id: str, block_id: str) -> Any:
    result = await sb.driver.press_ephemeral_button(shown, action_id=action_id, block_id=block_id)
    assert result.response.status_code == 200, result.response.text
    return result


async def told(sb: Sandbox, response_url: str, since: int) -> dict[str, Any]:
    """What the bot answered through a click's response_url."""
    rid = sb.slack.response_url_id(response_url)
    call = await sb.slack.wait_for("response_url", lambda c: c.params["id"] == rid, since=since)
    body: dict[str, Any] = call.params["body"]
    assert limit_problems(body, surface="message") == []
    return body


# --- what find shows --------------------------------------------------------------------------


async def test_find_lists_the_matching_leads_with_their_open_opportunities_soonest_first(
    sandbox: Sandbox,
) -> None:
    seed(sandbox, "lead_acme", date_won="2031-03-01", value=500_000, value_period="monthly")
    seed(sandbox, "lead_acme", date_won="2031-01-15")
    seed(sandbox, "lead_acme", status_id="stat_won", value=9_900)  # closed: not open
    seed(sandbox, "lead_acme", status_id="stat_lost", value=8_800)
    seed(sandbox, "lead_globex", value=4_000_000, value_period="one_time", confidence=20)
    # "corp" is in both names; Close is asked once, then each lead read once (side by side).
    shown = await find(sandbox, "find corp")
    assert sandbox.close.count("POST", "/data/search/") == 1
    assert sandbox.close.count("GET", "/lead/lead_acme/") == 1
    assert sandbox.close.count("GET", "/lead/lead_globex/") == 1
    text = texts(shown)
    assert "matching “corp” in Close" in text
    acme = text.index(f"*<{APP}lead/lead_acme/|Acme Corp>*")
    globex = text.index(f"*<{APP}lead/lead_globex/|Globex Corporation>*")
    assert "Status: *Potential* · 2 open opportunities" in text[acme:globex]
    lines = [line for line in text[acme:globex].splitlines() if line.startswith("• ")]
    assert lines == [
        "• *$12,000 annual* · Proposal Sent · Bob Baker · closes Wed 15 Jan 2031 · 60%",
        "• *$5,000 monthly* · Proposal Sent · Bob Baker · closes Sat 1 Mar 2031 · 60%",
    ]
    assert "$99" not in text and "$88" not in text  # won and lost are not open
    assert "• *$40,000 one-time* · Proposal Sent · Bob Baker" in text[globex:]
    acme_buttons = buttons(shown, "find_lead_0")
    assert list(acme_buttons) == [FIND_LOG_ACTION_ID, OPEN_IN_CLOSE_ACTION_ID, FIND_SHARE_ACTION_ID]
    assert acme_buttons[OPEN_IN_CLOSE_ACTION_ID]["url"] == f"{APP}lead/lead_acme/"
    ref = FindRef.decode(acme_buttons[FIND_LOG_ACTION_ID]["value"])
    assert ref == FindRef(lead_id="lead_acme", lead_name="Acme Corp")


async def test_the_ack_comes_before_close_is_asked(sandbox: Sandbox) -> None:
    sandbox.close.path_latency["/data/search/"] = 2.0
    started = time.monotonic()
    result = await sandbox.driver.slash_command("find acme")
    assert result.response.status_code == 200 and not result.response.content.strip()
    assert time.monotonic() - started < 1.5  # not held up by Close's two seconds
    rid = sandbox.slack.response_url_id(result.response_url)
    call = await sandbox.slack.wait_for("response_url", lambda c: c.params["id"] == rid)
    assert "Acme Corp" in json.dumps(call.params["body"])


async def test_an_exact_name_comes_first_and_more_than_five_leads_say_so(
    sandbox: Sandbox,
) -> None:
    for n in range(1, 8):
        sandbox.close.org.add_lead(f"Zenith Labs {n}", lead_id=f"lead_zenith{n}")
    sandbox.close.org.add_lead("Zenith Labs", lead_id="lead_zenith")
    shown = await find(sandbox, "find Zenith Labs")
    text = texts(shown)
    cards = [b for b in shown["blocks"] if b.get("block_id", "").startswith("find_lead_")]
    assert len(cards) == 5
    assert text.index("|Zenith Labs>*") < text.index("|Zenith Labs 1>*")
    assert "and more: type more of the name" in text
    # The five leads' reads, not the sixth's: it is only counted.
    assert sandbox.close.count("GET", "/lead/") == 5


async def test_no_match_says_so_and_its_button_opens_the_modal_for_a_new_lead(
    sandbox: Sandbox,
) -> None:
    shown = await find(sandbox, "find Zephyr Labs")
    assert "No lead matching “Zephyr Labs” in Close" in texts(shown)
    button = buttons(shown, "find_new_lead")[FIND_LOG_ACTION_ID]
    assert button["text"]["text"] == "Log an opportunity for Zephyr Labs"
    result = await press(sandbox, shown, FIND_LOG_ACTION_ID, "find_new_lead")
    opened = await sandbox.slack.wait_for(
        "views.open", lambda c: c.params.get("trigger_id") == result.trigger_id
    )
    assert lead_block(sent_view(opened))["element"]["initial_option"]["value"] == "new:Zephyr Labs"


async def test_log_an_opportunity_opens_the_modal_with_that_lead_chosen(
    sandbox: Sandbox,
) -> None:
    shown = await find(sandbox, "find acme")
    mark = sandbox.slack.mark()
    result = await press(sandbox, shown, FIND_LOG_ACTION_ID, "find_lead_0")
    opened = await sandbox.slack.wait_for(
        "views.open", lambda c: c.params.get("trigger_id") == result.trigger_id, since=mark
    )
    view = sent_view(opened)
    # Chosen in the form views.open sends: no search, nothing to wait for.
    assert lead_block(view)["element"]["initial_option"] == {
        "text": {"type": "plain_text", "text": "Acme Corp"},
        "value": "lead_acme",
    }
    view_id = opened.response["view"]["id"]
    # Then its contacts, with the lead still chosen; and the deal lands on that lead.
    await sandbox.slack.wait_for(
        "views.update", lambda c: c.params.get("view_id") == view_id, since=mark
    )
    assert "Road Runner" in json.dumps(sandbox.slack.views[view_id])
    await submit(sandbox, view_id, {"value": "5k"})
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert opportunity["lead_id"] == "lead_acme" and opportunity["value"] == 500_000
    await wait_until(
        lambda: any("Acme Corp" in json.dumps(m) for m in sandbox.slack.messages("C0SALES"))
    )


async def test_find_without_text_answers_with_how_to_use_it(sandbox: Sandbox) -> None:
    for typed in ("find", "FIND  "):
        shown = await find(sandbox, typed)
        assert shown["text"] == USAGE
    assert sandbox.close.count("POST", "/data/search/") == 0


async def test_help_tells_about_find(sandbox: Sandbox) -> None:
    answer = await command_answer(sandbox.slack, sandbox.driver, "help")
    assert "`/opportunity find acme`" in answer["text"]


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("unreachable", "Close did not answer, so I couldn't look for “acme”"),
        ("rate_limited", "Close asked me to slow down (rate limit)"),
    ],
)
async def test_close_down_or_rate_limited_gets_a_clear_answer(
    sandbox: Sandbox, fault: str, said: str
) -> None:
    if fault == "unreachable":
        sandbox.close.fail(50, status=503, paths=["/data/search/"])
    else:  # a reset far past what the client waits out
        sandbox.close.rate_limit(50, reset=120, paths=["/data/search/"])
    shown = await find(sandbox, "find acme")
    assert said in shown["text"]
    assert "Traceback" not in json.dumps(shown)


@pytest.mark.parametrize("who", ["U0DAVE", "U0GUEST"])  # no Close account; a guest
async def test_with_the_orgs_key_someone_who_is_not_a_close_user_is_shown_nothing(
    sandbox: Sandbox, who: str
) -> None:
    seed(sandbox, "lead_acme")
    shown = await find(sandbox, "find acme", user_id=who)
    assert shown["text"].startswith(NOT_A_CLOSE_USER)
    assert "12,000" not in json.dumps(shown) and FIND_LOG_ACTION_ID not in json.dumps(shown)
    assert sandbox.close.count("POST", "/data/search/") == 0
    assert sandbox.close.count("GET", "/lead/") == 0


# --- Share ------------------------------------------------------------------------------------


async def test_share_posts_the_leads_card_in_the_channel_for_everyone(sandbox: Sandbox) -> None:
    seed(sandbox, "lead_acme")
    shown = await find(sandbox, "find acme")
    mark = sandbox.slack.mark()
    await press(sandbox, shown, FIND_SHARE_ACTION_ID, "find_lead_0")
    posted = await sandbox.slack.wait_for("chat.postMessage", since=mark)
    assert posted.ok and posted.params["channel"] == "C0SALES"
    [card] = [m for m in sandbox.slack.messages("C0SALES") if m["ts"] == posted.response["ts"]]
    text = texts(card)
    assert f"*<{APP}lead/lead_acme/|Acme Corp>*" in text and "1 open opportunity" in text
    assert "$12,000 annual" in text and "Shared by <@U0ALICE>" in text
    assert limit_problems(card, surface="message") == []
    # Anyone in the channel can log a deal on it from there (the card's own button).
    assert PREVIEW_LOG_ACTION_ID in json.dumps(card["blocks"])


@asynccontextmanager
async def connect_sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    slack = SlackSimulator(bot_token=BOT_TOKEN)
    slack.add_channel(SHARED, "acme-shared")
    slack.share_channel(SHARED, "T0ACME")
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", slack=slack
    ) as sb:
        yield sb


async def test_in_a_channel_shared_with_another_organization_share_is_not_offered(
    tmp_path: Path,
) -> None:
    async with connect_sandbox(tmp_path) as sb:
        seed(sb, "lead_acme")
        shown = await find(sb, "find acme", channel_id=SHARED)
        # The answer is the person's own (ephemeral): the lead and its deals, but no Share.
        assert "$12,000 annual" in texts(shown)
        assert list(buttons(shown, "find_lead_0")) == [FIND_LOG_ACTION_ID, OPEN_IN_CLOSE_ACTION_ID]
        assert sb.slack.messages(SHARED) == []


async def test_share_in_a_channel_shared_since_is_refused_and_nothing_is_posted(
    tmp_path: Path,
) -> None:
    async with connect_sandbox(tmp_path) as sb:
        seed(sb, "lead_acme")
        shown = await find(sb, "find acme")  # #sales, still internal: Share offered
        assert FIND_SHARE_ACTION_ID in buttons(shown, "find_lead_0")
        audiences = sb.services.slack_gateway.audiences
        assert (await sb.driver.event(sb.slack.share_channel("C0SALES", "T0ACME"))).is_success
        await wait_until(lambda: audiences.known("C0SALES") == "external")
        mark = sb.slack.mark()
        result = await press(sb, shown, FIND_SHARE_ACTION_ID, "find_lead_0")
        note = await told(sb, result.response_url, mark)
        assert note["text"] == SHARE_REFUSED and note["response_type"] == "ephemeral"
        assert [c for c in sb.slack.calls("chat.postMessage")[mark:]] == []
        assert all("12,000" not in json.dumps(m) for m in sb.slack.messages("C0SALES"))


# --- as that person ---------------------------------------------------------------------------


@asynccontextmanager
async def personal() -> AsyncIterator[Sandbox]:
    async with running_sandbox(oauth=True, close_access="personal") as sb:
        # Bob's Close role sees only his own leads: Globex, not Acme (Carol's).
        sb.close.restrict("user_bob")
        sb.close.own_lead("lead_globex", "user_bob")
        sb.close.own_lead("lead_acme", "user_carol")
        yield sb


async def test_a_restricted_rep_finds_only_their_own_leads() -> None:
    async with personal() as sb:
        walk = await consent(sb.close, await connect_link(sb, "U0BOB"), user="user_bob")
        assert walk.page.status_code == 200, walk.page.text
        seed(sb, "lead_acme", value=1_234_500)
        shown = await find(sb, "find corp", user_id="U0BOB")
        text = texts(shown)
        assert "Globex Corporation" in text
        assert "Acme" not in json.dumps(shown) and "12,345" not in json.dumps(shown)
        reads = [r for r in sb.close.requests if r.path in ("/data/search/", "/lead/lead_globex/")]
        assert reads and all(r.headers["authorization"].startswith("Bearer ") for r in reads)


async def test_under_personal_someone_not_connected_gets_the_connect_prompt() -> None:
    async with personal() as sb:
        mark = len(sb.close.requests)
        shown = await find(sb, "find acme", user_id="U0CAROL")
        assert "Connect your Close account first" in shown["text"]
        assert "/close/oauth/start?state=" in button_url(shown)
        acting = [r for r in sb.close.requests[mark:] if not r.path.startswith("/webhook/")]
        assert acting == []  # nothing to Close on her behalf, key or not


# --- Socket Mode ------------------------------------------------------------------------------


async def test_socket_mode_find_answers_privately_with_the_leads(tmp_path: Path) -> None:
    """`python -m bot socket` as a process, on the Slack simulator's websocket."""
    close = CloseSimulator(api_key=CLOSE_API_KEY)
    slack = SlackSimulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    async with close, slack:
        bot = Bot(
            close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path, "socket"
        )
        try:
            await bot.start()
            await slack.socket_mode.wait_connections(1)
            async with SlackDriver(slack, "", SIGNING_SECRET, socket_mode=True) as driver:
                result = await driver.slash_command("find globex")
                assert result.response.status_code == 200
                rid = slack.response_url_id(result.response_url)
                call = await slack.wait_for(
                    "response_url", lambda c: c.params["id"] == rid, timeout=10
                )
                body = call.params["body"]
                assert body["response_type"] == "ephemeral"
                assert f"*<{APP}lead/lead_globex/|Globex Corporation>*" in texts(body)
                assert FIND_SHARE_ACTION_ID in json.dumps(body["blocks"])
        finally:
            bot.stop()


# --- the pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "looked_for"),
    [
        ("find acme", "acme"),
        ("Find  Acme Corp ", "Acme Corp"),
        ("find", ""),
        ("FIND", ""),
        ("finder 12k", None),
        ("Acme find 12k", None),
        ("", None),
    ],
)
def test_only_a_leading_find_is_the_subcommand(typed: str, looked_for: str | None) -> None:
    assert find_text(typed) == looked_for


def _opportunity(n: int, name: str) -> Opportunity:
    return Opportunity.model_validate(
        {
            "id": f"oppo_{n}",
            "lead_id": "lead_x",
            "value": 123_456_789 + n,
            "value_period": "annual",
            "value_currency": "USD",
            "status_label": name * 3,
            "status_type": "active",
            "user_name": name * 3,
            "date_won": date(2031, 1, 1 + n % 28).isoformat(),
            "confidence": 50,
        }
    )


def _found(n: int, name: str) -> FoundLead:
    details = LeadWithOpportunities(
        id=f"lead_{n}",
        display_name=name * 4,
        status_label=name,
        opportunities=[_opportunity(i, name) for i in range(40)],
    )
    return FoundLead(lead=Lead(id=details.id, display_name=details.display_name), details=details)


@pytest.mark.parametrize("name", ["x" * 300, *HOSTILE, "Ünïcödé & Söhne <GmbH>"])
def test_every_find_message_fits_slacks_limits_and_escapes_what_close_says(name: str) -> None:
    result = FindResult(text=name, leads=[_found(n, name) for n in range(5)], more=True)
    lead = result.leads[0].details
    assert lead is not None
    messages: list[Message] = [
        find_answer(result, close_app_url=APP, shareable=True),
        find_answer(FindResult(text=name), close_app_url=APP, shareable=True),
        find_answer(
            FindResult(text=name, leads=[FoundLead(lead=result.leads[0].lead)]),
            close_app_url=APP,
            shareable=False,
        ),
        shared_card(lead, close_app_url=APP, sharer="U0ALICE"),
        find_usage(),
        close_unreachable(name),
        close_rate_limited(name),
        share_failed(name, "Slack did not answer."),
    ]
    for message in messages:
        body = message.model_dump()
        assert limit_problems(body, surface="message") == [], message.text[:80]
        assert injected(body) == [], message.text[:80]
        assert len(message.blocks) <= 50
    answer = messages[0]
    assert "and 35 more" in texts(answer.model_dump())  # each lead's five, then the count
    assert format_date(date(2031, 1, 1)) in texts(answer.model_dump())
