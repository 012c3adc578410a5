"""Help over real HTTP: asked for, or a lone typo of a subcommand; a lone lead name still opens the modal."""

from __future__ import annotations

import pytest

from bot.listeners.help import HELP_TEXT, looks_like_help
from sandbox.stack import Sandbox
from tests.flows import wait_until


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hepl", True),
        ("hlep", True),
        ("whomai", True),
        ("--version", True),
        ("-v", True),
        ("/help", True),
        ("?", True),
        ("help", False),  # answered as help already, by name
        ("Initech", False),
        ("acme", False),
        ("hello", False),
        ("Help", False),  # capitalised: a company name
        ("hepl 12k", False),
        ("Acme 12k", False),
        ("", False),
    ],
)
def test_looks_like_help(text: str, expected: bool) -> None:
    assert looks_like_help(text) is expected


@pytest.mark.parametrize("text", ["help", "hepl", "--help"])
async def test_help_answers_ephemerally_with_grammar_and_examples(
    sandbox: Sandbox, text: str
) -> None:
    result = await sandbox.driver.slash_command(text)
    assert result.response.status_code == 200
    rid = sandbox.slack.response_url_id(result.response_url)
    await wait_until(lambda: bool(sandbox.slack.response_url_posts(rid)))
    [post] = sandbox.slack.response_url_posts(rid)
    assert post.get("response_type") == "ephemeral"
    assert post["text"].startswith(HELP_TEXT)
    assert HELP_TEXT.count("• `/opportunity ") == 3  # three examples
    assert "Create opportunity" in post["text"] and "Log opportunity" in post["text"]
    assert sandbox.slack.calls("views.open") == []


async def test_a_lone_lead_name_opens_the_modal(sandbox: Sandbox) -> None:
    result = await sandbox.driver.slash_command("Initech")
    view = await sandbox.driver.wait_for_view(result.trigger_id)
    assert view["callback_id"] == "opportunity_modal"


async def test_a_deal_whose_lead_starts_with_help_opens_the_modal(sandbox: Sandbox) -> None:
    result = await sandbox.driver.slash_command("Help Scout 12k annual")
    view = await sandbox.driver.wait_for_view(result.trigger_id)
    assert view["callback_id"] == "opportunity_modal"
    assert view["blocks"][0]["elements"][0]["text"].startswith("Help Scout · $12,000 annual")
