"""Link previews (issue 15): a Close lead link pasted in Slack unfolds into the lead and its deals.

End to end over real HTTP: the Slack driver posts the link and delivers `link_shared` to the
bot under uvicorn; the bot reads the Close simulator and answers with `chat.unfurl` on the Slack
simulator. The pure parts (which links, the blocks, the cache) are table-tested below them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.format import format_date
from bot.blocks.previews import (
    NOT_FOUND_TEXT,
    PREVIEW_LOG_ACTION_ID,
    SHOWN_OPPORTUNITIES,
    PreviewRef,
    lead_not_found,
    lead_preview,
    most_relevant,
)
from bot.close.models import LeadWithOpportunities, Opportunity
from bot.unfurl.cache import SeenRecently, SharedCache
from bot.unfurl.links import lead_id_in, unfurl_domain
from sandbox import blockkit
from sandbox.close_sim import CloseSimulator
from sandbox.slack_driver import PastedLinks, SlackDriver
from sandbox.slack_sim import Call, SlackSimulator
from sandbox.stack import BOT_TOKEN, CLOSE_API_KEY, SIGNING_SECRET, Sandbox
from tests.flows import submit, wait_opportunities, wait_until
from tests.process import APP_TOKEN, Bot

APP = "https://app.close.com/"
ACME = f"{APP}lead/lead_acme/"


def lead_reads(sb: Sandbox, lead_id: str | None = None) -> int:
    return sb.close.count("GET", f"/lead/{lead_id}/" if lead_id else "/lead/")


def seed(sb: Sandbox, lead_id: str, **fields: Any) -> dict[str, Any]:
    """An opportunity made in Close by a person (every field a preview shows, by default)."""
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


async def unfurled(sb: Sandbox, pasted: PastedLinks, timeout: float = 5.0) -> Call:  # noqa: ASYNC109
    """The bot's chat.unfurl for `pasted` (by its message, or its unfurl_id)."""
    shared = pasted.shared

    def for_it(call: Call) -> bool:
        return call.params.get("ts") == shared.message_ts or (
            call.params.get("unfurl_id") == shared.unfurl_id
        )

    return await sb.slack.wait_for("chat.unfurl", for_it, timeout)


def unfurl_calls(sb: Sandbox, pasted: PastedLinks) -> list[Call]:
    shared = pasted.shared
    return [
        c
        for c in sb.slack.calls("chat.unfurl")
        if c.params.get("ts") == shared.message_ts or c.params.get("unfurl_id") == shared.unfurl_id
    ]


def texts(unfurl: dict[str, Any]) -> str:
    """Every mrkdwn text of an unfurl's blocks, joined."""
    found: list[str] = []
    for block in unfurl["blocks"]:
        if isinstance(block.get("text"), dict):
            found.append(block["text"]["text"])
        for element in block.get("elements") or []:
            if element.get("type") == "mrkdwn":
                found.append(element["text"])
    return "\n".join(found)


def button(unfurl: dict[str, Any]) -> dict[str, Any]:
    return next(
        e
        for b in unfurl["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == PREVIEW_LOG_ACTION_ID
    )


async def settle(sb: Sandbox, seconds: float = 0.5) -> None:
    """Time for a bot that was going to answer to have answered (the ack comes first)."""
    await asyncio.sleep(seconds)


# --- what a preview shows ---------------------------------------------------------------------


async def test_a_pasted_lead_link_shows_the_lead_its_status_and_open_opportunities(
    sandbox: Sandbox,
) -> None:
    seed(sandbox, "lead_acme")
    seed(sandbox, "lead_acme", status_id="stat_won", value=9_900)  # closed: not shown
    pasted = await sandbox.driver.paste_links(
        [ACME], user_id="U0BOB", text=f"can you look at <{ACME}> before the call?"
    )
    assert pasted.response.status_code == 200

    call = await unfurled(sandbox, pasted)
    assert call.ok, call.response
    assert call.params["channel"] == "C0SALES" and call.params["ts"] == pasted.shared.message_ts
    unfurls = sandbox.slack.unfurls(pasted.shared)
    assert list(unfurls) == [ACME]
    shown = texts(unfurls[ACME])
    assert f"*<{ACME}|Acme Corp>*" in shown  # the name, linked to the lead
    assert "Status: *Potential*" in shown and "1 open opportunity" in shown
    assert "• *$12,000 annual* · Proposal Sent · Bob Baker · closes Wed 15 Jan 2031 · 60%" in shown
    assert "$99" not in shown
    ref = PreviewRef.decode(button(unfurls[ACME])["value"])
    assert ref == PreviewRef(
        lead_id="lead_acme", lead_name="Acme Corp", thread_ts=pasted.shared.message_ts
    )
    # The message now carries the preview as Slack shows it.
    [message] = [m for m in sandbox.slack.messages("C0SALES") if m["ts"] == call.params["ts"]]
    assert message["attachments"][0]["app_unfurl_url"] == ACME


@pytest.mark.parametrize(
    "url",
    [
        f"{APP}lead/lead_acme/",
        f"{APP}lead/lead_acme",
        f"{APP}lead/lead_acme/opportunities/",
        f"{APP}lead/lead_acme/contact/cont_acme_road/?tab=activity",
        f"{APP}lead/lead_acme/#opportunity-oppo_123",
        "https://APP.close.com/lead/lead_acme/?utm_source=slack&x=1",
    ],
)
async def test_a_lead_link_with_anything_after_it_is_previewed_under_its_exact_url(
    sandbox: Sandbox, url: str
) -> None:
    pasted = await sandbox.driver.paste_links([url])
    await unfurled(sandbox, pasted)
    unfurls = sandbox.slack.unfurls(pasted.shared)
    assert list(unfurls) == [url]  # keyed exactly as shared, not normalised
    assert "Acme Corp" in texts(unfurls[url])


async def test_several_links_in_one_message_each_get_their_preview_in_one_unfurl(
    sandbox: Sandbox,
) -> None:
    seed(sandbox, "lead_globex", value=4_000_000, value_period="one_time")
    urls = [
        ACME,
        f"{APP}lead/lead_globex/?tab=opportunities",
        f"{APP}lead/lead_nope/",  # not in Close: the neutral preview
        f"{APP}opportunity/oppo_1/",  # not a lead link: left alone
        "https://example.com/lead/lead_acme/",  # another site: left alone
    ]
    pasted = await sandbox.driver.paste_links(urls)
    await unfurled(sandbox, pasted)
    await settle(sandbox, 0.2)
    assert len(unfurl_calls(sandbox, pasted)) == 1
    unfurls = sandbox.slack.unfurls(pasted.shared)
    assert list(unfurls) == urls[:3]
    assert "Acme Corp" in texts(unfurls[urls[0]])
    assert "Globex Corporation" in texts(unfurls[urls[1]])
    assert "$40,000 one-time" in texts(unfurls[urls[1]])
    assert texts(unfurls[urls[2]]) == NOT_FOUND_TEXT


async def test_the_five_most_relevant_open_opportunities_then_and_n_more(
    sandbox: Sandbox,
) -> None:
    for day in range(8, 0, -1):  # created latest-closing first
        seed(sandbox, "lead_initech", date_won=f"2031-03-{day:02d}", value=day * 100_000)
    seed(sandbox, "lead_initech", status_id="stat_lost")
    url = f"{APP}lead/lead_initech/"
    pasted = await sandbox.driver.paste_links([url])
    await unfurled(sandbox, pasted)
    shown = texts(sandbox.slack.unfurls(pasted.shared)[url])
    assert "8 open opportunities" in shown
    lines = [line for line in shown.splitlines() if line.startswith("• ")]
    assert len(lines) == SHOWN_OPPORTUNITIES
    closing = [line.split("closes ")[1].split(" · ")[0] for line in lines]
    assert closing == [format_date(date(2031, 3, day)) for day in range(1, 6)]
    assert shown.endswith("and 3 more")


async def test_hostile_lead_names_are_escaped_in_the_preview(sandbox: Sandbox) -> None:
    hostile = "<!channel> Evil & Co <https://evil.example|Acme Corp> <@U0ALICE>"
    sandbox.close.org.add_lead(hostile, lead_id="lead_evil")
    url = f"{APP}lead/lead_evil/"
    pasted = await sandbox.driver.paste_links([url])
    call = await unfurled(sandbox, pasted)
    assert call.ok
    preview = sandbox.slack.unfurls(pasted.shared)[url]
    shown = texts(preview)  # every mrkdwn text Slack renders (the button's value is data)
    assert "<!channel>" not in shown and "<https://evil.example" not in shown
    assert "<@U0" not in shown
    assert "&lt;!channel&gt; Evil &amp; Co &lt;https://evil.example|Acme Corp&gt;" in shown
    # The only link is the one this app builds from the lead's id.
    assert shown.count("<http") == 1 and f"<{url}|" in shown


async def test_a_link_still_in_the_composer_is_unfurled_by_unfurl_id_and_source(
    sandbox: Sandbox,
) -> None:
    pasted = await sandbox.driver.paste_links([ACME], source="composer")
    call = await unfurled(sandbox, pasted)
    assert call.ok, call.response
    assert call.params["unfurl_id"] == pasted.shared.unfurl_id
    assert call.params["source"] == "composer"
    assert "channel" not in call.params and "ts" not in call.params
    assert "Acme Corp" in texts(sandbox.slack.unfurls(pasted.shared)[ACME])


# --- who sees what ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sharer",
    [
        "U0DAVE",  # in Slack, no Close account
        "U0GUEST",  # a guest of the workspace
        "U0POLLY",  # another bot
        "U0ERIN",  # a deactivated Slack account
        "U0NOBODY",  # someone Slack does not know
    ],
)
async def test_a_sharer_who_is_not_an_active_close_user_gets_no_close_data(
    sandbox: Sandbox, sharer: str
) -> None:
    seed(sandbox, "lead_acme")
    pasted = await sandbox.driver.paste_links([ACME, f"{APP}lead/lead_nope/"], user_id=sharer)
    assert pasted.response.status_code == 200
    await settle(sandbox)
    assert unfurl_calls(sandbox, pasted) == []
    assert lead_reads(sandbox) == 0  # not even read


async def test_a_lead_close_does_not_have_gets_a_neutral_not_found(sandbox: Sandbox) -> None:
    url = f"{APP}lead/lead_deleted123/"
    pasted = await sandbox.driver.paste_links([url])
    await unfurled(sandbox, pasted)
    preview = sandbox.slack.unfurls(pasted.shared)[url]
    assert texts(preview) == NOT_FOUND_TEXT
    assert [b["type"] for b in preview["blocks"]] == ["context"]  # nothing to act on


@pytest.mark.parametrize("status", [500, 401, 403, 400])
async def test_a_close_error_shows_no_preview_and_no_other_data(
    sandbox: Sandbox, status: int
) -> None:
    sandbox.close.fail(1, status=status, paths=["/lead/lead_acme/"], methods=["GET"])
    pasted = await sandbox.driver.paste_links([ACME, f"{APP}lead/lead_globex/"])
    call = await unfurled(sandbox, pasted)
    unfurls = sandbox.slack.unfurls(pasted.shared)
    assert list(unfurls) == [f"{APP}lead/lead_globex/"]  # the other link still previews
    assert "Acme" not in json.dumps(call.params)
    # The failure was not remembered: the next paste asks Close again and previews.
    again = await sandbox.driver.paste_links([ACME], channel_id="C0GENERAL")
    await unfurled(sandbox, again)
    assert "Acme Corp" in texts(sandbox.slack.unfurls(again.shared)[ACME])


async def test_close_down_for_good_gives_up_quietly_without_a_preview(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.close.fail(50, status=503, paths=["/lead/"], methods=["GET"])
    pasted = await sandbox.driver.paste_links([ACME])
    await wait_until(lambda: lead_reads(sandbox) >= 4, timeout=10)  # the client's retries
    await settle(sandbox)
    assert unfurl_calls(sandbox, pasted) == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --- fast and light -----------------------------------------------------------------------------


async def test_the_same_link_pasted_in_five_channels_at_once_reads_close_once(
    sandbox: Sandbox,
) -> None:
    sandbox.close.latency = 0.3
    pastes = await asyncio.gather(
        *(
            sandbox.driver.paste_links([ACME], channel_id=f"C0PASTE{i}", user_id="U0CAROL")
            for i in range(5)
        )
    )
    for pasted in pastes:
        assert (await unfurled(sandbox, pasted)).ok
    assert lead_reads(sandbox, "lead_acme") == 1


async def test_the_same_link_pasted_five_times_in_a_row_reads_close_once(
    sandbox: Sandbox,
) -> None:
    for i in range(5):
        pasted = await sandbox.driver.paste_links([f"{ACME}?n={i}"], channel_id=f"C0ROW{i}")
        assert (await unfurled(sandbox, pasted)).ok
    assert lead_reads(sandbox, "lead_acme") == 1


@pytest.mark.parametrize("leads", [["lead_acme"], ["lead_acme", "lead_globex", "lead_initech"]])
async def test_previews_land_within_two_seconds_with_close_taking_one(
    sandbox: Sandbox, leads: list[str]
) -> None:
    """Also for several links in the first message after start (the Close client's wait to
    learn an endpoint's rate limit from its first answer must not add Close's latency)."""
    for lead_id in leads:
        seed(sandbox, lead_id)
    sandbox.close.latency = 1.0
    urls = [f"{APP}lead/{lead_id}/" for lead_id in leads]
    started = time.time()
    pasted = await sandbox.driver.paste_links(urls, user_id="U0BOB")
    acked = pasted.response.elapsed.total_seconds()
    call = await unfurled(sandbox, pasted, timeout=5)
    took = call.at - started
    assert acked < 0.5, f"the event was acked after {acked:.2f}s"
    assert took < 2.0, f"the previews took {took:.2f}s"
    shown = sandbox.slack.unfurls(pasted.shared)
    assert all("Bob Baker" in texts(shown[url]) for url in urls)


async def test_slacks_retry_of_the_event_unfurls_once(sandbox: Sandbox) -> None:
    sandbox.close.latency = 0.3
    pasted = await sandbox.driver.paste_links([ACME])
    # Slack did not see the ack in time (say) and sends the same event again, twice.
    for attempt in (1, 2):
        retry = await sandbox.driver.link_shared(
            pasted.shared, event_id=pasted.event_id, retry_num=attempt
        )
        assert retry.status_code == 200
    await unfurled(sandbox, pasted)
    await settle(sandbox)
    assert len(unfurl_calls(sandbox, pasted)) == 1
    assert lead_reads(sandbox) == 1


async def test_rate_limited_unfurl_is_tried_once_more_after_retry_after(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.slack.rate_limit("chat.unfurl", 1, retry_after=0.1)
    pasted = await sandbox.driver.paste_links([ACME])
    await sandbox.slack.wait_for("chat.unfurl", lambda c: c.ok, timeout=5)
    assert [c.status for c in unfurl_calls(sandbox, pasted)] == [429, 200]
    assert lead_reads(sandbox) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("error", ["ratelimited", "cannot_unfurl_url", "cannot_find_message"])
async def test_slacks_refusals_are_taken_quietly(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture, error: str
) -> None:
    # A rate limit is tried once more (then given up); the others are not tried again.
    sandbox.slack.fail_method("chat.unfurl", error, 2 if error == "ratelimited" else 1)
    pasted = await sandbox.driver.paste_links([ACME])
    await wait_until(lambda: len(unfurl_calls(sandbox, pasted)) >= 1)
    await settle(sandbox, 0.3)
    assert all(not c.ok for c in unfurl_calls(sandbox, pasted))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # The bot is none the worse: the next paste previews.
    again = await sandbox.driver.paste_links([ACME], channel_id="C0GENERAL")
    assert (await unfurled(sandbox, again)).ok


async def test_a_token_slack_will_not_unfurl_with_is_logged_not_raised(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.slack.fail_method("chat.unfurl", "not_allowed_token_type", 1)
    pasted = await sandbox.driver.paste_links([ACME])
    await wait_until(lambda: len(unfurl_calls(sandbox, pasted)) >= 1)
    await settle(sandbox, 0.2)
    assert len(unfurl_calls(sandbox, pasted)) == 1  # not retried: it will not get better
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("not_allowed_token_type" in w for w in warnings)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --- the preview's button -----------------------------------------------------------------------


async def test_log_an_opportunity_opens_the_modal_with_that_lead_and_confirms_in_the_thread(
    sandbox: Sandbox,
) -> None:
    pasted = await sandbox.driver.paste_links([ACME], user_id="U0BOB")
    await unfurled(sandbox, pasted)
    mark = sandbox.slack.mark()
    clicked = await sandbox.driver.press_unfurl_button(
        pasted.shared, ACME, action_id=PREVIEW_LOG_ACTION_ID, user_id="U0ALICE"
    )
    assert clicked.response.status_code == 200
    view = await sandbox.driver.wait_for_view(clicked.trigger_id)
    await sandbox.slack.wait_for(
        "views.update", lambda c: c.params.get("view_id") == view["id"], since=mark
    )
    lead = next(b for b in sandbox.slack.views[view["id"]]["blocks"] if b["block_id"] == "lead")
    assert lead["element"]["initial_option"]["value"] == "lead_acme"
    assert lead["element"]["initial_option"]["text"]["text"] == "Acme Corp"
    contact = next(
        b for b in sandbox.slack.views[view["id"]]["blocks"] if b["block_id"] == "contact"
    )
    assert "Road Runner" in json.dumps(contact)  # the lead's contacts are offered

    await submit(sandbox, view["id"], {"value": "5k"})
    [opportunity] = await wait_opportunities(sandbox, 1)
    assert opportunity["lead_id"] == "lead_acme" and opportunity["value"] == 500_000
    await wait_until(lambda: len(sandbox.slack.thread("C0SALES", pasted.shared.message_ts)) >= 2)
    replies = sandbox.slack.thread("C0SALES", pasted.shared.message_ts)[1:]
    assert any("Acme Corp" in json.dumps(r) for r in replies)


# --- Socket Mode --------------------------------------------------------------------------------


async def test_socket_mode_previews_a_pasted_link_and_its_redelivery_once(tmp_path: Path) -> None:
    """`python -m bot socket` as a process, on the Slack simulator's websocket."""
    close = CloseSimulator(api_key=CLOSE_API_KEY)
    slack = SlackSimulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    async with close, slack:
        bot = Bot(
            close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path, "socket"
        )
        try:
            await bot.start()
            connection = await slack.socket_mode.wait_connections(1)
            async with SlackDriver(slack, "", SIGNING_SECRET, socket_mode=True) as driver:
                shared = slack.share_links("C0SALES", [ACME], user="U0BOB")
                body = driver.event_body(shared.event(bot_is_member=True), event_id="Ev0SOCKET1")
                # Slack sends it, then (say the ack got lost) sends it again as a retry.
                for attempt, reason in ((0, ""), (1, "timeout")):
                    envelope = driver.socket_envelope(
                        body, retry_attempt=attempt, retry_reason=reason
                    )
                    await connection.socket.send_str(json.dumps(envelope))
                    assert await slack.socket_mode.wait_ack(envelope["envelope_id"]) == {}
                call = await slack.wait_for("chat.unfurl", timeout=10)
                assert call.ok and call.params["ts"] == shared.message_ts
                # Another link pasted after the retry: once its preview is in, the retry is
                # long past.
                later = slack.share_links("C0SALES", [f"{APP}lead/lead_globex/"], user="U0BOB")
                envelope = driver.socket_envelope(
                    driver.event_body(later.event(bot_is_member=True), event_id="Ev0SOCKET2")
                )
                await connection.socket.send_str(json.dumps(envelope))
                await slack.wait_for(
                    "chat.unfurl", lambda c: c.params.get("ts") == later.message_ts, timeout=10
                )
                unfurled = [c.params.get("ts") for c in slack.calls("chat.unfurl")]
                assert unfurled.count(shared.message_ts) == 1
                assert close.count("GET", "/lead/lead_acme/") == 1
                assert "Acme Corp" in texts(slack.unfurls(shared)[ACME])
        finally:
            bot.stop()


# --- the Slack simulator's side -----------------------------------------------------------------


async def test_the_simulators_chat_unfurl_answers_with_slacks_errors() -> None:
    async with SlackSimulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as slack:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
        shared = slack.share_links("C0SALES", [ACME], user="U0BOB")
        preview = {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Acme"}}]}

        async def error(**kwargs: Any) -> str:
            with pytest.raises(SlackApiError) as refused:
                await client.chat_unfurl(**kwargs)
            return str(refused.value.response["error"])

        at = {"channel": "C0SALES", "ts": shared.message_ts}
        assert await error(channel="C0SALES", ts="1.000001", unfurls={ACME: preview}) == (
            "cannot_find_message"
        )
        assert await error(unfurl_id="nope", source="composer", unfurls={ACME: preview}) == (
            "cannot_find_message"
        )
        other = f"{APP}lead/lead_globex/"
        assert await error(**at, unfurls={other: preview}) == "cannot_unfurl_url"
        plain = slack.add_message("C0SALES", f"<{ACME}>")  # no link_shared was sent for it
        assert await error(channel="C0SALES", ts=plain["ts"], unfurls={ACME: preview}) == (
            "cannot_unfurl_url"
        )
        bad = {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]}
        assert await error(**at, unfurls={ACME: bad}) == "invalid_blocks"
        app_level = AsyncWebClient(token=APP_TOKEN, base_url=slack.api_url)
        with pytest.raises(SlackApiError) as refused:
            await app_level.chat_unfurl(**at, unfurls={ACME: preview})
        assert refused.value.response["error"] == "not_allowed_token_type"
        slack.rate_limit("chat.unfurl", 1, retry_after=1)
        with pytest.raises(SlackApiError) as limited:
            await client.chat_unfurl(**at, unfurls={ACME: preview})
        assert limited.value.response.status_code == 429
        assert limited.value.response.headers["Retry-After"] == "1"
        slack.scopes.discard("links:write")
        assert await error(**at, unfurls={ACME: preview}) == "missing_scope"
        slack.scopes.add("links:write")

        assert (await client.chat_unfurl(**at, unfurls={ACME: preview}))["ok"]
        again = {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Acme!"}}]}
        assert (await client.chat_unfurl(**at, unfurls={ACME: again}))["ok"]
        [message] = [m for m in slack.messages("C0SALES") if m["ts"] == shared.message_ts]
        [attachment] = message["attachments"]  # replaced, not added to
        assert attachment["is_app_unfurl"] and attachment["app_unfurl_url"] == ACME
        assert attachment["blocks"][0]["text"]["text"] == "Acme!"


def test_the_link_shared_event_has_slacks_shape() -> None:
    slack = SlackSimulator(bot_token=BOT_TOKEN)
    reply = slack.share_links("C0SALES", [ACME, f"{ACME}x"], user="U0BOB", thread_ts="1.5")
    event = reply.event(bot_is_member=True)
    assert event == {
        "type": "link_shared",
        "channel": "C0SALES",
        "is_bot_user_member": True,
        "user": "U0BOB",
        "message_ts": reply.message_ts,
        "unfurl_id": reply.unfurl_id,
        "source": "conversations_history",
        "links": [
            {"domain": "app.close.com", "url": ACME},
            {"domain": "app.close.com", "url": f"{ACME}x"},
        ],
        "thread_ts": "1.5",
    }
    assert reply.unfurl_id.startswith(f"C0SALES.{reply.message_ts}.")
    typing = slack.share_links("C0SALES", [ACME], user="U0BOB", source="composer")
    event = typing.event(bot_is_member=True)
    assert event["channel"] == "COMPOSER" and event["source"] == "composer"
    assert event["message_ts"] == event["unfurl_id"] and event["unfurl_id"].startswith("U0BOB-")
    assert "thread_ts" not in event


# --- the pure parts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "lead_id"),
    [
        ("https://app.close.com/lead/lead_AbC123/", "lead_AbC123"),
        ("https://app.close.com/lead/lead_AbC123", "lead_AbC123"),
        ("http://app.close.com/lead/lead_AbC123/", "lead_AbC123"),
        ("https://App.Close.com/lead/lead_AbC123/tasks/?q=1#x", "lead_AbC123"),
        ("https://app.close.com/lead/lead_AbC123?query=1", "lead_AbC123"),
        ("https://app.close.com/lead/lead_AbC123#fragment", "lead_AbC123"),
        ("  https://app.close.com/lead/lead_AbC123/  ", "lead_AbC123"),
        ("https://app.close.com/lead/", None),
        ("https://app.close.com/lead/cont_AbC123/", None),
        ("https://app.close.com/lead/lead_/", None),
        ("https://app.close.com/lead/lead_a%2Fb/", None),
        ("https://app.close.com/lead/lead_a|b/", None),
        ("https://app.close.com/leads/lead_AbC123/", None),
        ("https://app.close.com/x/lead/lead_AbC123/", None),
        ("https://app.close.com/opportunity/oppo_1/", None),
        ("https://app.close.com.evil.example/lead/lead_AbC123/", None),
        ("https://evil.example/?https://app.close.com/lead/lead_AbC123/", None),
        ("https://app.close.com:8443/lead/lead_AbC123/", None),
        ("ftp://app.close.com/lead/lead_AbC123/", None),
        ("https://app.close.com:bad/lead/lead_AbC123/", None),
        ("not a url", None),
    ],
)
def test_which_links_are_close_lead_links(url: str, lead_id: str | None) -> None:
    assert lead_id_in(url, APP) == lead_id


def test_a_close_app_url_with_a_path_or_port_is_honoured() -> None:
    base = "https://close.internal:8443/crm/"
    assert unfurl_domain(base) == "close.internal"
    assert lead_id_in("https://close.internal:8443/crm/lead/lead_x1/", base) == "lead_x1"
    assert lead_id_in("https://close.internal/crm/lead/lead_x1/", base) is None
    assert lead_id_in("https://close.internal:8443/lead/lead_x1/", base) is None
    assert unfurl_domain(APP) == "app.close.com"


def opportunity(n: int, **fields: Any) -> Opportunity:
    return Opportunity(id=f"oppo_{n}", lead_id="lead_x", **{"status_type": "active", **fields})


def test_most_relevant_is_soonest_close_then_largest_value_and_only_open_ones() -> None:
    ranked = most_relevant(
        [
            opportunity(1, date_won=date(2031, 5, 1), value=10),
            opportunity(2, value=999_999),  # no date: after every dated one
            opportunity(3, date_won=date(2031, 1, 1), value=10),
            opportunity(4, date_won=date(2031, 1, 1), value=20),  # same day, larger first
            opportunity(5, date_won=date(2020, 1, 1), status_type="won"),
            opportunity(6, date_won=date(2020, 1, 1), status_type="lost"),
            opportunity(7, date_won=date(2024, 1, 1)),  # overdue: the most pressing
        ]
    )
    assert [o.id for o in ranked] == ["oppo_7", "oppo_4", "oppo_3", "oppo_1", "oppo_2"]


def test_the_preview_escapes_everything_from_close_and_fits_slacks_limits() -> None:
    hostile = "<!here> <https://evil.example|x> & " + "y" * 500
    lead = LeadWithOpportunities(
        id="lead_x",
        display_name=hostile,
        status_label="<!channel>",
        opportunities=[
            opportunity(
                i,
                value=100 * i,
                value_period="monthly",
                status_label="<@U0ALICE>",
                user_name="<https://evil.example|Boss>",
                confidence=50,
            )
            for i in range(1, 8)
        ],
    )
    preview = lead_preview(lead, close_app_url=APP, thread_ts="1.2")
    shown = texts(preview)  # all the mrkdwn Slack renders
    for live in ("<!here>", "<!channel>", "<@U0ALICE>", "<https://evil.example"):
        assert live not in shown
    assert shown.count("<http") == 1  # the lead's own link, nothing of Close's making
    assert blockkit.check(preview, surface="message") == []
    assert texts(preview).endswith("and 2 more")
    value = PreviewRef.decode(button(preview)["value"])
    assert value is not None and value.lead_id == "lead_x" and len(button(preview)["value"]) < 2000
    assert blockkit.check(lead_not_found(), surface="message") == []


def test_a_preview_without_open_opportunities_says_so() -> None:
    lead = LeadWithOpportunities(id="lead_x", display_name="Quiet Ltd", status_label="Customer")
    shown = texts(lead_preview(lead, close_app_url=APP))
    assert "Status: *Customer* · No open opportunities" in shown
    assert "•" not in shown


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_cache_keeps_an_answer_for_its_ttl_and_shares_one_fetch_in_flight() -> None:
    clock = Clock()
    cache: SharedCache[str, int] = SharedCache(30.0, clock=clock)
    fetches = 0
    gate = asyncio.Event()

    async def fetch() -> int:
        nonlocal fetches
        fetches += 1
        await gate.wait()
        return fetches

    waiting = [asyncio.ensure_future(cache.get("k", fetch)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == [1] * 5 and fetches == 1
    clock.now += 29.9
    assert await cache.get("k", fetch) == 1 and fetches == 1
    clock.now += 0.2
    assert await cache.get("k", fetch) == 2 and fetches == 2


async def test_the_cache_forgets_a_failure_and_a_caller_giving_up_does_not_cancel_others() -> None:
    cache: SharedCache[str, str] = SharedCache(30.0)
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        raise RuntimeError("Close is down")

    with pytest.raises(RuntimeError):
        await cache.get("k", failing)
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "lead"

    patient = asyncio.ensure_future(cache.get("k", slow))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(cache.get("k", slow), 0.01)
    release.set()
    assert await patient == "lead" and calls == 1


def test_the_cache_stays_bounded() -> None:
    clock = Clock()
    cache: SharedCache[int, int] = SharedCache(30.0, max_entries=3, clock=clock)
    for key in range(5):
        cache._store(key, key)
    assert [cache.fresh(k)[0] for k in range(5)] == [False, False, True, True, True]


def test_a_delivery_is_first_once_within_its_window() -> None:
    clock = Clock()
    seen: SeenRecently[str] = SeenRecently(600.0, max_entries=2, clock=clock)
    assert seen.first("Ev1") and not seen.first("Ev1")
    clock.now += 601
    assert seen.first("Ev1")
    assert seen.first("Ev2") and seen.first("Ev3")  # bounded: the oldest goes
    assert seen.first("Ev1")
