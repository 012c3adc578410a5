"""The connect pages in a real headless Chromium at a phone's width (390x844) and a desktop's
(1280x800): readable without horizontal scrolling, self-contained (no script, image, font or
stylesheet fetched), saying what happened; screenshots kept for a person to look at
(OAUTH_SCREENSHOTS=<dir>, else the test's temporary directory)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sandbox.stack import Sandbox, running_sandbox
from tests.browser import DESKTOP, PHONE, Tab, chromium, chromium_path
from tests.oauth_flows import connect_link, consent

CHECKS = """(() => {
  const doc = document.documentElement;
  return {
    title: document.title,
    text: document.body.innerText,
    fits: doc.scrollWidth <= window.innerWidth,
    scrollWidth: doc.scrollWidth,
    innerWidth: window.innerWidth,
    fetched: performance.getEntriesByType('resource').map(e => e.name),
    external: document.querySelectorAll('script, img, link, iframe, object, embed').length,
    fontPx: parseFloat(getComputedStyle(document.body).fontSize),
    viewport: !!document.querySelector('meta[name=viewport]'),
  };
})()"""


@pytest.fixture
async def oauth_sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    chromium_path()  # skip or fail (CI) before starting anything
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", oauth=True
    ) as sb:
        yield sb


def shots(tmp_path: Path) -> Path:
    where = Path(os.environ.get("OAUTH_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


async def look(tab: Tab, url: str, size: tuple[int, int], shot: Path) -> dict[str, object]:
    width, height = size
    await tab.open(url, width=width, height=height, mobile=width < 600)
    await tab.screenshot(shot)
    checks: dict[str, object] = await tab.evaluate(CHECKS)
    assert checks["fits"], f"horizontal scroll at {width}px: {checks}"
    assert checks["innerWidth"] == width
    assert checks["fetched"] == [] and checks["external"] == 0, checks
    assert checks["viewport"] is True
    assert isinstance(checks["fontPx"], int | float) and checks["fontPx"] >= 16
    return checks


async def test_the_connected_page_reads_well_on_a_phone_and_a_desktop(
    oauth_sandbox: Sandbox, tmp_path: Path
) -> None:
    sb = oauth_sandbox
    async with chromium() as browser:
        tab = await browser.new_tab()
        for name, size in (("phone", PHONE), ("narrow-phone", (360, 740)), ("desktop", DESKTOP)):
            start = await connect_link(sb)
            # The browser goes to the start link, on to Close's consent page, and back.
            async with httpx.AsyncClient() as http:
                consent_url = (await http.get(start)).headers["location"]
            granted = consent_url + "&user=user_alice&decision=grant"
            checks = await look(tab, granted, size, shots(tmp_path) / f"connected-{name}.png")
            assert checks["title"] == "Connected as Alice Anders (alice@example.com)"
            assert "You can close this page and go back to Slack" in str(checks["text"])
            assert str(await tab.evaluate("location.href")).startswith(
                sb.settings.public_url + "close/oauth/callback?"
            )


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_the_refusal_pages_read_well_and_say_what_to_do(
    oauth_sandbox: Sandbox, tmp_path: Path, size: tuple[int, int]
) -> None:
    sb = oauth_sandbox
    name = "phone" if size == PHONE else "desktop"
    walk = await consent(sb.close, await connect_link(sb), decision="deny")
    assert walk.page.status_code == 400
    other = await consent(
        sb.close, await connect_link(sb), user="user_zoe", organization="orga_elsewhere"
    )
    assert other.page.status_code == 400
    async with chromium() as browser:
        tab = await browser.new_tab()
        declined = await look(tab, walk.callback_url, size, shots(tmp_path) / f"used-{name}.png")
        assert declined["title"] == "This link was already used"
        assert "/opportunity connect" in str(declined["text"])
        fresh = await connect_link(sb)
        async with httpx.AsyncClient() as http:
            consent_url = (await http.get(fresh)).headers["location"]
        denied = await look(
            tab,
            consent_url + "&decision=deny",
            size,
            shots(tmp_path) / f"declined-{name}.png",
        )
        assert denied["title"] == "Not connected"
        assert "You declined" in str(denied["text"])
