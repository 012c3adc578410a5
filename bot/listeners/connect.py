"""`/opportunity connect | disconnect`: a person connects their own Close account (OAuth), or
forgets it; the *Connect Close* link button's click is acked here."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.blocks.messages import section
from bot.blocks.text import escape
from bot.connections.access import CONNECT_ACTION_ID, connect_actions
from bot.connections.wording import after_disconnect, must_connect_first, what_connecting_does
from bot.services import Services

NOT_CONFIGURED = (
    "Connecting your own Close account is not set up in this workspace yet. The admin who runs "
    "the bot must create a Close OAuth app (Close > Settings > Developer > OAuth Apps) and set "
    "`CLOSE_OAUTH_CLIENT_ID`, `CLOSE_OAUTH_CLIENT_SECRET` and `PUBLIC_URL`. Until then, what "
    "you log goes to Close through the app's own key."
)

VERBS = ("connect", "disconnect")
LINK_LIFE = "The link works once, for 10 minutes."


def is_connect_command(text: str) -> bool:
    return text.strip().lower() in VERBS


async def handle(
    services: Services, text: str, *, team_id: str, user_id: str, respond: AsyncRespond
) -> None:
    """Answer `connect` or `disconnect` privately (the command was acked already)."""
    if text.strip().lower() == "disconnect":
        await respond(text=await _disconnect(services, team_id, user_id), response_type="ephemeral")
        return
    text_out, blocks = await connect_prompt(services, team_id, user_id)
    await respond(text=text_out, blocks=blocks, response_type="ephemeral")


async def connect_prompt(
    services: Services, team_id: str, user_id: str, *, first: bool = False
) -> tuple[str, list[dict[str, Any]]]:
    """The private *Connect Close* answer: a link button minted for this person. `first`: they
    asked for something that needs their own connection (CLOSE_ACCESS=personal)."""
    access = services.access
    if access is None:
        return NOT_CONFIGURED, [section(NOT_CONFIGURED)]
    mode = services.close_clients.mode
    connection = await access.connection(user_id)
    if connection is not None and not connection.broken:
        head = (
            f"You are connected to Close as *{escape(access.label(connection))}*. "
            "To connect as someone else, use the button; `/opportunity disconnect` forgets it."
        )
    elif connection is not None:
        head = "Close no longer accepts your connection. Connect again to act as yourself."
    elif first:
        head = f"{must_connect_first(mode)} {LINK_LIFE}"
    else:
        head = f"{what_connecting_does(mode)} {LINK_LIFE}"
    url = await access.connect_link(team_id, user_id)
    if url is None:  # pragma: no cover - settings refuse OAuth without PUBLIC_URL
        return NOT_CONFIGURED, [section(NOT_CONFIGURED)]
    label = "Reconnect Close" if connection is not None and connection.broken else "Connect Close"
    return head, [section(head), connect_actions(url, label)]


async def _disconnect(services: Services, team_id: str, user_id: str) -> str:
    access = services.access
    if access is None:
        return NOT_CONFIGURED
    if await access.disconnect(team_id, user_id):
        return (
            "Disconnected: I forgot your Close tokens. "
            f"{after_disconnect(services.close_clients.mode)} To remove the app from your "
            "Close account too: Close > Settings > Connected Apps."
        )
    return "You had no Close connection to forget. `/opportunity connect` makes one."


def register(app: AsyncApp, services: Services) -> None:
    @app.action(CONNECT_ACTION_ID)
    async def connect_clicked(ack: AsyncAck) -> None:
        """A link button: the browser opens the URL; Slack still sends the click."""
        await ack()
