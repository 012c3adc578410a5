"""`GET /close/oauth/start` and `GET /close/oauth/callback`, and their small HTML pages
(self-contained: inline CSS, no scripts, fonts or images; readable at a phone's width)."""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.connections.access import CloseAccess, Connected, ConnectRefused

log = logging.getLogger(__name__)

START_PATH = "/close/oauth/start"
CALLBACK_PATH = "/close/oauth/callback"
# Query values are short (a state is 43 characters, Close's codes shorter): anything longer
# is not ours.
MAX_PARAM = 512

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>
*{{box-sizing:border-box}}
html{{-webkit-text-size-adjust:100%}}
body{{margin:0;padding:24px 16px;background:#f6f7f9;color:#1d1c1d;
font:16px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}}
main{{max-width:32rem;margin:0 auto;background:#fff;border-radius:12px;padding:24px;
box-shadow:0 1px 3px rgba(0,0,0,.12);border-top:6px solid {accent}}}
h1{{font-size:1.35rem;line-height:1.3;margin:0 0 12px}}
p{{margin:0 0 12px;overflow-wrap:anywhere}}
code{{font:0.95em ui-monospace,SFMono-Regular,Menlo,monospace;background:#f0f0f2;
padding:1px 4px;border-radius:4px}}
.small{{color:#616061;font-size:.875rem;margin:16px 0 0}}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
{body}
<p class="small">Close opportunity bot</p>
</main>
</body>
</html>
"""

GREEN, RED = "#2eb67d", "#e01e5a"


def page(title: str, paragraphs: list[str], *, status: int, ok: bool) -> HTMLResponse:
    """A page of escaped `paragraphs` (`backticks` become code)."""
    body = "\n".join(f"<p>{_inline(text)}</p>" for text in paragraphs)
    content = PAGE.format(title=html.escape(title), body=body, accent=GREEN if ok else RED)
    return HTMLResponse(
        content,
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def _inline(text: str) -> str:
    parts = html.escape(text, quote=True).split("`")
    return "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))


def refused_page(refused: ConnectRefused) -> HTMLResponse:
    return page(refused.title, [refused.text], status=400, ok=False)


def not_configured_page() -> HTMLResponse:
    return page(
        "Connecting Close is not set up",
        [
            "This app has no Close OAuth app configured, so people cannot connect their own "
            "Close account yet.",
            "Ask the admin who runs the bot to set `CLOSE_OAUTH_CLIENT_ID` and "
            "`CLOSE_OAUTH_CLIENT_SECRET`.",
        ],
        status=400,
        ok=False,
    )


def _param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None or not value.strip() or len(value) > MAX_PARAM:
        return None
    return value.strip()


OnConnected = Callable[[Connected], Awaitable[object]]


async def _nothing(_connected: Connected) -> None:
    return None


def oauth_routes(
    access: Callable[[], CloseAccess | None], *, on_connected: OnConnected = _nothing
) -> list[BaseRoute]:
    """The two routes; `access()` is None when OAuth is not configured (they say so).
    `on_connected`: awaited after a connection is stored (what waited for it goes on)."""
    return [
        Route(START_PATH, start_endpoint(access), methods=["GET"]),
        Route(CALLBACK_PATH, callback_endpoint(access, on_connected), methods=["GET"]),
    ]


def start_endpoint(
    access: Callable[[], CloseAccess | None],
) -> Callable[[Request], Awaitable[Response]]:
    async def start(request: Request) -> Response:
        service = access()
        if service is None:
            return not_configured_page()
        state = _param(request, "state")
        if state is None:
            return refused_page(ConnectRefused("state_missing", *_missing_state()))
        try:
            url = await service.consent_url(state)
        except ConnectRefused as refused:
            log.info("Refused a Close connect start: %s", refused.kind)
            return refused_page(refused)
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})

    return start


def callback_endpoint(
    access: Callable[[], CloseAccess | None], on_connected: OnConnected = _nothing
) -> Callable[[Request], Awaitable[Response]]:
    async def callback(request: Request) -> Response:
        service = access()
        if service is None:
            return not_configured_page()
        state = _param(request, "state")
        if state is None:
            return refused_page(ConnectRefused("state_missing", *_missing_state()))
        try:
            connected = await service.complete(
                state=state, code=_param(request, "code"), error=_param(request, "error")
            )
        except ConnectRefused as refused:
            log.info("Refused a Close connect callback: %s", refused.kind)
            return refused_page(refused)
        except Exception:
            log.exception("Unexpected error completing a Close connection")
            return page(
                "Something went wrong",
                [
                    "The connection could not be completed, and nothing was saved. Try "
                    "`/opportunity connect` again in a minute."
                ],
                status=500,
                ok=False,
            )
        try:
            await on_connected(connected)
        except Exception:  # they are connected: what waits for them goes on at its next look
            log.exception(
                "Could not resume what waited for %s's connection", connected.slack_user_id
            )
        return page(
            f"Connected as {connected.label}",
            [
                f"Your Slack account is now connected to Close as {connected.label}.",
                "You can close this page and go back to Slack. `/opportunity disconnect` "
                "undoes it.",
            ],
            status=200,
            ok=True,
        )

    return callback


def _missing_state() -> tuple[str, str]:
    return (
        "This link is incomplete",
        "The link lacks its state. Run `/opportunity connect` in Slack for a new link.",
    )
