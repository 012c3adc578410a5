"""ALLOWED_USER_IDS / ALLOWED_CHANNEL_IDS: one middleware, a polite refusal, admins always let in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.listeners.guard import NOT_FOR_YOU, NOT_HERE, Access
from bot.listeners.shortcuts import GLOBAL_SHORTCUT
from bot.settings import Settings
from sandbox.stack import Sandbox, running_sandbox


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        allowed_user_ids="U0ALICE, U0CAROL",
        allowed_channel_ids="C0SALES",
        admin_user_ids="U0DAVE",
    ) as sb:
        yield sb


@pytest.mark.parametrize(
    ("user", "channel", "refusal"),
    [
        ("U0ALICE", "C0SALES", None),
        ("U0BOB", "C0SALES", NOT_FOR_YOU),
        ("U0ALICE", "C0GENERAL", NOT_HERE),
        ("U0DAVE", "C0GENERAL", None),  # an admin, anywhere
        ("U0ALICE", None, None),  # a modal's own requests name no channel
    ],
)
def test_access_table(user: str, channel: str | None, refusal: str | None) -> None:
    access = Access.of(["U0ALICE", "U0CAROL"], ["C0SALES"], ["U0DAVE"])
    assert access.refusal(user, channel) == refusal


def test_empty_lists_allow_everyone_everywhere() -> None:
    assert Access.of([], [], []).refusal("U0ANYONE", "C0ANY") is None


def test_settings_read_comma_separated_ids() -> None:
    settings = Settings(_env_file=None, allowed_user_ids="U1, U2;U3", allowed_channel_ids="")  # type: ignore[call-arg]
    assert settings.allowed_user_ids == ["U1", "U2", "U3"]
    assert settings.allowed_channel_ids == []


async def test_a_user_not_on_the_list_gets_an_ephemeral_refusal_and_no_modal(
    guarded: Sandbox,
) -> None:
    result = await guarded.driver.slash_command("Acme 5k", user_id="U0BOB")
    assert result.response.status_code == 200
    answer = result.response.json()
    assert answer == {"response_type": "ephemeral", "text": NOT_FOR_YOU}
    # An allowed user's command sent after it has its modal open: the refused one is long
    # past, and opened nothing.
    later = await guarded.driver.slash_command("Acme 5k", user_id="U0ALICE")
    await guarded.driver.wait_for_view(later.trigger_id)
    opened = [c.params.get("trigger_id") for c in guarded.slack.calls("views.open")]
    assert opened == [later.trigger_id]


async def test_a_channel_not_on_the_list_gets_a_refusal(guarded: Sandbox) -> None:
    result = await guarded.driver.slash_command("Acme 5k", channel_id="C0GENERAL")
    assert result.response.json()["text"] == NOT_HERE


async def test_allowed_user_in_allowed_channel_and_admins_anywhere_get_the_modal(
    guarded: Sandbox,
) -> None:
    for user, channel in (("U0ALICE", "C0SALES"), ("U0DAVE", "C0GENERAL")):
        result = await guarded.driver.slash_command("", user_id=user, channel_id=channel)
        assert result.response.status_code == 200 and not result.response.content
        await guarded.driver.wait_for_view(result.trigger_id)


async def test_a_refused_shortcut_shows_the_refusal_in_a_modal(guarded: Sandbox) -> None:
    result = await guarded.driver.global_shortcut(GLOBAL_SHORTCUT, user_id="U0BOB")
    assert result.response.status_code == 200
    view = await guarded.driver.wait_for_view(result.trigger_id)
    assert NOT_FOR_YOU in str(view["blocks"])
