"""What `/opportunity connect` (its prompt, the connected DM, `disconnect`, `help`) promises is
true for each CLOSE_ACCESS: under `key` Close is always reached with the app's key, so
connecting says who you are and never that the bot will act as you."""

from __future__ import annotations

import pytest

from sandbox.stack import running_sandbox
from tests.oauth_flows import command_answer, connect_link, consent

AS_YOU = "goes to Close as you"
WITH_KEY = "still goes to Close through the app's own key"

# (mode, what `connect` promises, what it must not, after `disconnect`)
CASES = [
    ("key", WITH_KEY, AS_YOU, "I match you to your Close user by email"),
    ("either", AS_YOU, WITH_KEY, "now goes through the app's own Close key"),
    ("personal", AS_YOU, WITH_KEY, "I cannot act in Close for you"),
]


@pytest.mark.parametrize(("mode", "promised", "never", "after"), CASES)
async def test_connect_disconnect_and_help_say_what_each_close_access_does(
    mode: str, promised: str, never: str, after: str
) -> None:
    async with running_sandbox(oauth=True, close_access=mode) as sb:
        prompt = await command_answer(sb.slack, sb.driver, "connect")
        assert promised in prompt["text"] and never not in prompt["text"]
        assert "The link works once, for 10 minutes." in prompt["text"]

        help_text = (await command_answer(sb.slack, sb.driver, "help"))["text"]
        help_line = help_text[help_text.index("*Your own Close account*") :]
        if mode == "key":
            assert "what you log still goes through the app's own key" in help_line
            assert "as you" not in help_line
        else:
            assert "goes to Close as you" in help_line

        mark = sb.slack.mark()
        walk = await consent(sb.close, await connect_link(sb))
        assert walk.page.status_code == 200, walk.page.text
        dm = await sb.slack.wait_for(
            "chat.postMessage", lambda c: "connected to Close as" in c.params["text"], since=mark
        )
        assert promised in dm.params["text"] and never not in dm.params["text"]

        gone = await command_answer(sb.slack, sb.driver, "disconnect")
        assert gone["text"].startswith("Disconnected: I forgot your Close tokens.")
        assert after in gone["text"]
