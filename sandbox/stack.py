"""The whole thing on one machine: Close and Slack simulators, the real bot over HTTP, a Slack driver."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.app import build_app
from bot.services import Services, utc_now
from bot.settings import Settings
from bot.transport.http import create_http_app
from sandbox.close_sim import CloseSimulator
from sandbox.server import RunningServer, bind_free_port, start_server
from sandbox.slack_driver import SlackDriver
from sandbox.slack_sim import SlackSimulator

# Obviously fake credentials: the simulators accept only these.
BOT_TOKEN = "xoxb-sandbox-bot-token"
SIGNING_SECRET = "sandbox-signing-secret"
CLOSE_API_KEY = "api_sandbox.closekey"
# Fernet key (32 bytes, url-safe base64) that seals the sandbox's Close tokens: fake, like the rest.
TOKEN_ENCRYPTION_KEY = "c2FuZGJveC10b2tlbi1zZWFsaW5nLWtleS0zMmJ5dGU="


@dataclass
class Sandbox:
    close: CloseSimulator
    slack: SlackSimulator
    bot: RunningServer
    services: Services
    settings: Settings
    driver: SlackDriver

    @property
    def events_url(self) -> str:
        return self.bot.url + "slack/events"


def sandbox_settings(
    *, close_url: str, slack_url: str, database_url: str, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "close_api_key": CLOSE_API_KEY,
        "close_api_url": close_url,
        "slack_api_url": slack_url,
        "database_url": database_url,
        # Snappy retries: the simulators answer in milliseconds.
        "worker_poll_seconds": 0.2,
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.5,
        "worker_lease_seconds": 10,
        # Close -> Slack is off unless a test or the demo asks for it (`webhook` or a poll period):
        # its reads would otherwise show in every test's count of Close requests.
        "close_events_poll_seconds": 0,
        # Nudges likewise (their users.list, Close reads and DMs): a test asks with NUDGE_TIME.
        "nudge_time": "",
        "digest_time": "",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def oauth_settings(close: CloseSimulator) -> dict[str, Any]:
    """Settings that point the bot's Close OAuth at the (started) simulator's OAuth app."""
    return {
        "close_oauth_client_id": close.oauth.client_id,
        "close_oauth_client_secret": close.oauth.client_secret,
        "close_oauth_authorize_url": close.oauth_authorize_url,
        "close_oauth_token_url": close.oauth_token_url,
        "token_encryption_key": TOKEN_ENCRYPTION_KEY,
    }


@asynccontextmanager
async def running_sandbox(
    *,
    database_url: str | None = None,
    clock: Callable[[], datetime] = utc_now,
    close: CloseSimulator | None = None,
    slack: SlackSimulator | None = None,
    webhook: bool = False,
    oauth: bool = False,
    **settings_overrides: Any,
) -> AsyncIterator[Sandbox]:
    """Start both simulators and the bot (uvicorn, real HTTP), and stop them all afterwards.

    `webhook`: the bot's own URL is its PUBLIC_URL, so Close's changes arrive by webhook.
    `oauth`: people can connect their own Close account (the simulator's OAuth app; the bot's
    own URL is its PUBLIC_URL, so Close's changes come by webhook as in production).
    """
    close = close or CloseSimulator(api_key=CLOSE_API_KEY)
    slack = slack or SlackSimulator(bot_token=BOT_TOKEN)
    with tempfile.TemporaryDirectory(prefix="opportunity-bot-") as tmp:
        url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'sandbox.sqlite3'}"
        close_url = await close.start()
        slack_url = await slack.start()
        sock = bind_free_port()
        try:
            if webhook or oauth:
                settings_overrides.setdefault(
                    "public_url", f"http://127.0.0.1:{sock.getsockname()[1]}/"
                )
            if oauth:
                settings_overrides = {**oauth_settings(close), **settings_overrides}
            settings = sandbox_settings(
                close_url=close_url, slack_url=slack_url, database_url=url, **settings_overrides
            )
            services = Services.create(settings, clock=clock)
            bot = await start_server(
                create_http_app(services, build_app(settings, services)), sock=sock
            )
            try:
                await services.catalog.wait_loaded(5.0)
                driver = SlackDriver(slack, bot.url + "slack/events", SIGNING_SECRET)
                try:
                    yield Sandbox(
                        close=close,
                        slack=slack,
                        bot=bot,
                        services=services,
                        settings=settings,
                        driver=driver,
                    )
                finally:
                    await driver.aclose()
            finally:
                await bot.stop()
        finally:
            await slack.stop()
            await close.stop()
