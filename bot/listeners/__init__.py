"""Slack listeners, grouped by surface; each module's `register(app, services)` wires its handlers."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners import (
    actions,
    alerts,
    commands,
    confirmation_actions,
    connect,
    entity_edit,
    find,
    flexpane,
    home,
    nudges,
    options,
    shared_channels,
    shortcuts,
    unfurl,
    views,
    workflow,
)
from bot.services import Services


def register(app: AsyncApp, services: Services) -> None:
    commands.register(app, services)
    connect.register(app, services)
    find.register(app, services)
    views.register(app, services)
    options.register(app, services)
    actions.register(app, services)
    shortcuts.register(app, services)
    confirmation_actions.register(app, services)
    home.register(app, services)
    nudges.register(app, services)
    alerts.register(app, services)
    workflow.register(app, services)
    unfurl.register(app, services)
    flexpane.register(app, services)
    entity_edit.register(app, services)
    shared_channels.register(app, services)
