"""Driving "Connect your Close" over real HTTP: the command, the start route, Close's consent
page (the simulator's), the callback — as a browser following redirects would."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import AsyncEngine

from sandbox.close_sim import CloseSimulator
from sandbox.slack_driver import SlackDriver
from sandbox.slack_sim import Call, SlackSimulator
from sandbox.stack import Sandbox


async def command_answer(
    slack: SlackSimulator, driver: SlackDriver, text: str, *, user_id: str = "U0ALICE"
) -> dict[str, Any]:
    """Run `/opportunity text`; the bot's ephemeral answer (its response_url body)."""
    mark = slack.mark()
    result = await driver.slash_command(text, user_id=user_id)
    assert result.response.status_code == 200, result.response.text
    rid = slack.response_url_id(result.response_url)
    call = await slack.wait_for("response_url", lambda c: c.params["id"] == rid, since=mark)
    body: dict[str, Any] = call.params["body"]
    assert body["response_type"] == "ephemeral"
    return body


def button_url(answer: dict[str, Any]) -> str:
    """The *Connect Close* link button's URL in a message's blocks."""
    for block in answer.get("blocks") or []:
        for element in block.get("elements") or [block.get("accessory") or {}]:
            if element.get("type") == "button" and element.get("url"):
                return str(element["url"])
    raise AssertionError(f"no link button in {answer}")


async def connect_link(sb: Sandbox, user_id: str = "U0ALICE") -> str:
    return button_url(await command_answer(sb.slack, sb.driver, "connect", user_id=user_id))


@dataclass
class Walk:
    """Each hop of a connect: the start route's redirect, Close's, and the callback's page."""

    consent_url: str
    callback_url: str
    page: httpx.Response


async def consent(
    close: CloseSimulator,
    start_url: str,
    *,
    user: str = "user_alice",
    decision: str = "grant",
    organization: str | None = None,
    before_callback: Any = None,
) -> Walk:
    """Open the start link, answer Close's consent page as `user`, follow back to the app."""
    async with httpx.AsyncClient(timeout=10) as http:
        start = await http.get(start_url)
        assert start.status_code == 302, start.text
        consent_url = start.headers["location"]
        assert consent_url.startswith(close.oauth_authorize_url)
        choice = {"user": user, "decision": decision}
        if organization is not None:
            choice["organization"] = organization
        back = await http.get(consent_url + "&" + urlencode(choice))
        assert back.status_code == 302, back.text
        callback_url = back.headers["location"]
        if before_callback is not None:
            before_callback()
        page = await http.get(callback_url)
    return Walk(consent_url, callback_url, page)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def every_row(engine: AsyncEngine) -> str:
    """Every row of every table of the database, as text (what someone reading it sees)."""
    metadata = MetaData()
    async with engine.connect() as connection:
        await connection.run_sync(metadata.reflect)
        rows: list[str] = []
        for table in metadata.sorted_tables:
            result = await connection.execute(select(table))
            rows += [repr(tuple(row)) for row in result]
    return "\n".join(rows)


async def connection_rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    metadata = MetaData()
    async with engine.connect() as connection:
        await connection.run_sync(lambda sync: metadata.reflect(sync, only=["close_connections"]))
        table = metadata.tables["close_connections"]
        return [tuple(row) for row in await connection.execute(select(table))]


def posted(sb: Sandbox, *, since: int = 0) -> list[Call]:
    """The chat.postMessage calls since the call-log position `since`."""
    return [c for c in sb.slack.calls()[since:] if c.method == "chat.postMessage"]
