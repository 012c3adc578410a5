"""Builds the Bolt app from settings and services; nothing here starts or serves anything."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp

from bot import listeners
from bot.services import Services
from bot.settings import Settings


def build_app(settings: Settings, services: Services) -> AsyncApp:
    """The Bolt app with every listener wired to `services` (the same in HTTP and Socket Mode)."""
    signing_secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    app = AsyncApp(
        client=services.slack,
        signing_secret=signing_secret,
        # Socket Mode needs no signature (the websocket is authenticated); HTTP always verifies.
        request_verification_enabled=signing_secret is not None,
        logger=logging.getLogger("bot.bolt"),
    )
    listeners.register(app, services)
    return app
