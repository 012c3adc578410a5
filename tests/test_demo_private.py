"""The demo's scenes about who sees what (sandbox/demo_private.py): a person connecting their
own Close through the simulator's consent page, and a deal logged in a channel shared with
another organization — the scene itself fails the demo if a Close value reaches that channel."""

from __future__ import annotations

import pytest

from sandbox.demo_private import DemoFailed, connect_close, deal_in_a_shared_channel
from sandbox.stack import running_sandbox


async def test_connecting_close_then_a_deal_in_a_shared_channel_keeps_close_data_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with running_sandbox(oauth=True) as sb:
        await connect_close(sb)
        await deal_in_a_shared_channel(sb)
        shared = sb.slack.messages("C0ACME")
    out = capsys.readouterr().out
    assert "“Allow access to your Close account?” [Allow] [Deny]" in out
    assert "“Connected as Alice Anders (alice@example.com)" in out
    assert "in her DM with the app: You are connected to Close as" in out
    assert "created by Alice Anders, with her own Close connection" in out
    assert "No Close value (8,000, 40%) reached #acme-shared." in out
    assert all("8,000" not in str(message) for message in shared)


async def test_the_shared_channel_scene_fails_the_demo_if_close_data_reaches_the_channel() -> None:
    """Its check is real: with EXTERNAL_CHANNELS=allow the confirmation lands in the channel."""
    async with running_sandbox(external_channels="allow") as sb:
        with pytest.raises(DemoFailed, match="#acme-shared shows Close data: 8,000, 40%"):
            await deal_in_a_shared_channel(sb)
