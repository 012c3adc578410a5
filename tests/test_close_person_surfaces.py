"""What a person reads from Close goes through their own access, over real HTTP: a restricted
rep's lead typeahead, a lead's contacts and link previews never show another rep's lead — not
even from what the bot remembered for someone else — and under CLOSE_ACCESS=personal someone
not connected is asked, privately, to connect Close first, with nothing sent to Close."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.listeners.modal_flow import lead_contacts
from sandbox.close_sim import CloseSimulator
from sandbox.server import port_for_a_child
from sandbox.slack_driver import PastedLinks, SlackDriver
from sandbox.slack_sim import SlackSimulator
from sandbox.stack import (
    BOT_TOKEN,
    CLOSE_API_KEY,
    SIGNING_SECRET,
    Sandbox,
    oauth_settings,
    running_sandbox,
)
from tests.flows import open_modal
from tests.oauth_flows import button_url, command_answer, connect_link, consent, posted
from tests.process import APP_TOKEN, Bot

APP = "https://app.close.com/"
ACME = f"{APP}lead/lead_acme/"
GLOBEX = f"{APP}lead/lead_globex/"


@asynccontextmanager
async def sandbox(access: str) -> AsyncIterator[Sandbox]:
    async with running_sandbox(oauth=True, close_access=access) as sb:
        # Bob's Close role sees only his own leads: Globex, not Acme (Carol's).
        sb.close.restrict("user_bob")
        sb.close.own_lead("lead_globex", "user_bob")
        sb.close.own_lead("lead_acme", "user_carol")
        yield sb


async def connect(sb: Sandbox, slack_user: str, close_user: str) -> None:
    walk = await consent(sb.close, await connect_link(sb, slack_user), user=close_user)
    assert walk.page.status_code == 200, walk.page.text


async def suggest(sb: Sandbox, view_id: str, typed: str, user_id: str) -> list[dict[str, Any]]:
    response = await sb.driver.block_suggestion(view_id, "lead", typed, user_id=user_id)
    assert response.status_code == 200, response.text
    options: list[dict[str, Any]] = response.json()["options"]
    return options


def values(options: list[dict[str, Any]]) -> list[str]:
    return [o["value"] for o in options]


def acting_requests(sb: Sandbox, mark: int) -> list[Any]:
    """Close requests since `mark`, but the app's own webhook subscription (made at start)."""
    return [r for r in sb.close.requests[mark:] if not r.path.startswith("/webhook/")]


async def unfurl_of(sb: Sandbox, pasted: PastedLinks) -> dict[str, dict[str, Any]]:
    shared = pasted.shared
    await sb.slack.wait_for(
        "chat.unfurl",
        lambda c: c.params.get("ts") == shared.message_ts,
        5.0,
    )
    return sb.slack.unfurls(shared)


def slack_text(sb: Sandbox) -> str:
    """Everything the bot sent Slack (every call's parameters), as text."""
    return json.dumps([call.params for call in sb.slack.calls()], default=str)


async def test_a_restricted_reps_typeahead_never_shows_another_reps_lead() -> None:
    async with sandbox("either") as sb:
        await connect(sb, "U0BOB", "user_bob")
        # Alice (not connected: the key's view) types first, so "co" is remembered with Acme.
        alice_view = await open_modal(sb, "", user_id="U0ALICE")
        assert "lead_acme" in values(await suggest(sb, alice_view, "co", "U0ALICE"))
        bob_view = await open_modal(sb, "", user_id="U0BOB")
        for typed in ("co", "acm", "corp", "c"):
            seen = values(await suggest(sb, bob_view, typed, "U0BOB"))
            assert "lead_acme" not in seen, (typed, seen)
        assert "lead_globex" in values(await suggest(sb, bob_view, "co", "U0BOB"))
        # And the key's view is still the key's: Alice's answer did not become Bob's.
        assert "lead_acme" in values(await suggest(sb, alice_view, "co", "U0ALICE"))
        # Bob's searches went as Bob; no token of his reached Slack.
        searches = [r for r in sb.close.requests if r.path == "/data/search/"]
        assert any(r.headers["authorization"].startswith("Bearer ") for r in searches)
        text = slack_text(sb)
        assert not [t for t in sb.close.tokens_of("user_bob") if t in text]


async def test_a_restricted_reps_contacts_are_their_own_views() -> None:
    async with sandbox("personal") as sb:
        await connect(sb, "U0BOB", "user_bob")
        await connect(sb, "U0ALICE", "user_alice")
        alice = await lead_contacts(sb.services, "lead_acme", user_id="U0ALICE")
        assert len(alice) == 3  # remembered for 30 s, but for Alice's view only
        assert await lead_contacts(sb.services, "lead_acme", user_id="U0BOB") == []
        globex = await lead_contacts(sb.services, "lead_globex", user_id="U0BOB")
        assert [c.id for c in globex] == ["cont_globex_hank"]


async def test_a_restricted_reps_preview_never_shows_another_reps_lead() -> None:
    async with sandbox("either") as sb:
        await connect(sb, "U0BOB", "user_bob")
        sb.close.create_opportunity_as(
            "lead_acme",
            {"value": 1_234_500, "value_period": "annual", "custom.cf_source": "Inbound"},
            user_id="user_carol",
        )
        # Alice's preview (the key's view) is read first and kept for 30 s.
        alice = await sb.driver.paste_links([ACME], user_id="U0ALICE")
        assert "Acme Corp" in json.dumps(await unfurl_of(sb, alice))
        bob = await sb.driver.paste_links([ACME, GLOBEX], user_id="U0BOB")
        shown = await unfurl_of(sb, bob)
        acme_blocks = json.dumps(shown.get(ACME, {}))
        assert "Acme" not in acme_blocks and "12,345" not in acme_blocks
        assert "Carol" not in acme_blocks and "Potential" not in acme_blocks
        assert "Globex Corporation" in json.dumps(shown[GLOBEX])
        reads = [r for r in sb.close.requests if r.path == "/lead/lead_acme/"]
        assert [r.headers["authorization"].split()[0] for r in reads] == ["Basic", "Bearer"]


async def test_under_personal_someone_not_connected_is_asked_to_connect_and_close_is_not_asked() -> (
    None
):
    async with sandbox("personal") as sb:
        mark = len(sb.close.requests)
        answer = await command_answer(sb.slack, sb.driver, "Acme 12k", user_id="U0CAROL")
        assert "Connect your Close account first" in answer["text"]
        assert "/close/oauth/start?state=" in button_url(answer)
        assert sb.slack.calls("views.open") == []
        # A link Carol shares: the prompt, only to her, where she shared it; no preview.
        pasted = await sb.driver.paste_links([ACME], user_id="U0CAROL")
        await sb.slack.wait_for("chat.postEphemeral", lambda c: c.params["user"] == "U0CAROL")
        [call] = sb.slack.calls("chat.postEphemeral")
        prompt = call.params
        assert "Connect your Close account first" in prompt["text"]
        assert "/close/oauth/start?state=" in json.dumps(prompt["blocks"])
        # The prompt is the answer instead of the preview (the listener ends with it): none comes.
        assert sb.slack.unfurls(pasted.shared) == {}
        assert acting_requests(sb, mark) == []  # nothing to Close on her behalf, key or not


async def test_under_personal_a_typeahead_without_a_connection_offers_nothing_and_says_why() -> (
    None
):
    async with sandbox("personal") as sb:
        await connect(sb, "U0BOB", "user_bob")
        view_id = await open_modal(sb, "", user_id="U0BOB")
        assert "lead_globex" in values(await suggest(sb, view_id, "glo", "U0BOB"))
        assert sb.services.access is not None
        await sb.services.access.disconnect("T0SANDBOX", "U0BOB")  # the modal is still open
        since = len(sb.slack.calls())
        mark = len(sb.close.requests)
        assert await suggest(sb, view_id, "glob", "U0BOB") == []
        assert await suggest(sb, view_id, "globe", "U0BOB") == []
        assert acting_requests(sb, mark) == []
        await sb.slack.wait_for("chat.postMessage", lambda c: "Connect" in c.params["text"])
        # Whether to tell is decided while each keystroke is answered (once per person), so
        # with both answered, no second prompt can still be on its way.
        told = [c for c in posted(sb, since=since) if "Connect" in c.params["text"]]
        assert len(told) == 1  # once, not per keystroke


async def test_socket_mode_a_restricted_reps_typeahead_and_preview_are_their_own(
    tmp_path: Path,
) -> None:
    """`python -m bot socket` as a process (CLOSE_ACCESS=either, PUBLIC_URL for the connect
    routes): Bob connects, then types and shares a link over the simulator's websocket."""
    close = CloseSimulator(api_key=CLOSE_API_KEY)
    slack = SlackSimulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    close.restrict("user_bob")
    close.own_lead("lead_globex", "user_bob")
    close.own_lead("lead_acme", "user_carol")
    async with close, slack:
        bot = Bot(
            close, slack, f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", tmp_path, "socket"
        )
        port = port_for_a_child()
        bot.env.update(
            {
                "PORT": str(port),
                "PUBLIC_URL": f"http://127.0.0.1:{port}/",
                "CLOSE_ACCESS": "either",
                **{k.upper(): str(v) for k, v in oauth_settings(close).items()},
            }
        )
        try:
            await bot.start()
            connection = await slack.socket_mode.wait_connections(1)
            async with SlackDriver(slack, "", SIGNING_SECRET, socket_mode=True) as driver:
                answer = await command_answer(slack, driver, "connect", user_id="U0BOB")
                walk = await consent(close, button_url(answer), user="user_bob")
                assert walk.page.status_code == 200, bot.stderr()
                # The typeahead, in a modal Bob opened.
                result = await driver.slash_command("", user_id="U0BOB")
                view = await driver.wait_for_view(result.trigger_id)
                response = await driver.block_suggestion(view["id"], "lead", "co")
                seen = [o["value"] for o in response.json()["options"]]
                assert "lead_globex" in seen and "lead_acme" not in seen, seen
                # A link to Acme that Bob shares: Close tells Bob there is no such lead.
                shared = slack.share_links("C0SALES", [ACME, GLOBEX], user="U0BOB")
                body = driver.event_body(shared.event(bot_is_member=True), event_id="Ev0BOB1")
                envelope = driver.socket_envelope(body)
                await connection.socket.send_str(json.dumps(envelope))
                await slack.wait_for(
                    "chat.unfurl", lambda c: c.params.get("ts") == shared.message_ts, 10
                )
                shown = slack.unfurls(shared)
                assert "Acme" not in json.dumps(shown.get(ACME, {}))
                assert "Globex Corporation" in json.dumps(shown[GLOBEX])
        finally:
            bot.stop()
