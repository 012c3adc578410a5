"""The `/opportunity` slash command: ack at once, then open the modal (or answer a subcommand)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.connections.wording import help_line
from bot.listeners import admin_commands, alerts, connect, find, nudges
from bot.listeners.help import HELP_TEXT, looks_like_help
from bot.listeners.modal_flow import open_modal
from bot.services import Services

COMMAND = "/opportunity"


def register(app: AsyncApp, services: Services) -> None:
    @app.command(COMMAND)
    async def opportunity_command(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        text = str(body.get("text") or "").strip()
        # Only a lone "help" asks for help: "Help Scout 12k" is a deal with the lead Help Scout.
        if text.lower() in ("help", "?", "-h", "--help") or looks_like_help(text):
            await respond(
                text=HELP_TEXT
                + "\n\n"
                + admin_commands.MAPPING_HELP
                + "\n\n"
                + find.FIND_HELP
                + "\n\n"
                + help_line(services.close_clients.mode),
                response_type="ephemeral",
            )
            return
        if connect.is_connect_command(text):
            await connect.handle(
                services,
                text,
                team_id=str(body.get("team_id") or ""),
                user_id=str(body.get("user_id") or ""),
                respond=respond,
            )
            return
        looked_for = find.find_text(text)
        if looked_for is not None:
            await find.handle(
                services,
                looked_for,
                user_id=str(body.get("user_id") or ""),
                team_id=str(body.get("team_id") or "") or None,
                channel_id=body.get("channel_id"),
                response_url=body.get("response_url"),
            )
            return
        if nudges.is_nudges_command(text):
            await nudges.handle_command(
                services, text, user_id=str(body.get("user_id") or ""), respond=respond
            )
            return
        if alerts.is_alerts_command(text):
            await alerts.handle_command(
                services, text, user_id=str(body.get("user_id") or ""), respond=respond
            )
            return
        subcommand = admin_commands.parse_subcommand(text)
        if subcommand is not None:
            await admin_commands.handle(
                services, subcommand, invoker=str(body.get("user_id") or ""), respond=respond
            )
            return
        await open_modal(
            services,
            trigger_id=str(body.get("trigger_id") or ""),
            user_id=str(body.get("user_id") or ""),
            team_id=str(body.get("team_id") or "") or None,
            text=text,
            channel_id=body.get("channel_id"),
            response_url=body.get("response_url"),
        )
