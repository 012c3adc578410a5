"""Start-up checks: does Slack accept the bot (and app) token, does Close accept the API key.

Asked in a thread of its own as soon as the settings are read (`Preflight`), so the round trips
(a second each to a slow Close) overlap importing the app and warming the parser instead of
preceding them. Light on purpose: it imports the two HTTP clients, not the app.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from slack_sdk.web.async_client import AsyncWebClient

from bot.close.client import CloseClient
from bot.close.errors import CloseAuthError, CloseError
from bot.settings import HOW_TO_GET, Settings
from bot.slack.audience import Audience, audience_of, may_show_close_data
from bot.slack.errors import NotAllowed, SlackError, TokenRejected
from bot.slack.gateway import SlackGateway

log = logging.getLogger(__name__)

# How long the start-up checks wait for Slack or Close before going on without an answer.
PREFLIGHT_TIMEOUT_SECONDS = 10.0


@dataclass
class Checked:
    """What the checks said: `refusal` is the one line to print when a credential is refused."""

    refusal: str | None = None
    # The Close key's organization, as GET /me/ named it (the catalog need not ask again).
    close_organization_id: str | None = None


async def preflight(settings: Settings, *, app_token: bool = False) -> Checked:
    """Ask Slack and Close whether they accept the configured credentials (SLACK_BOT_TOKEN by
    auth.test, SLACK_APP_TOKEN by apps.connections.open when `app_token`, CLOSE_API_KEY by
    GET /me/). A refusal is the one line to print; none also when Slack or Close cannot be
    reached, since the bot keeps trying those once it runs."""
    checked = Checked()
    checks = [
        _check_bot_token(settings),
        _check_close_key(settings, checked),
        _check_posting_channels(settings),
    ]
    if app_token:
        checks.append(_check_app_token(settings))
    for refusal in await asyncio.gather(*checks):
        if refusal is not None:
            checked.refusal = refusal
            break
    return checked


class Preflight:
    """`preflight` started now in a thread with its own event loop; `wait` for its answer."""

    def __init__(self, settings: Settings, *, app_token: bool = False) -> None:
        self._checked: Checked | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(settings, app_token), name="preflight", daemon=True
        )
        self._thread.start()

    def _run(self, settings: Settings, app_token: bool) -> None:
        try:
            self._checked = asyncio.run(preflight(settings, app_token=app_token))
        except BaseException as error:  # re-raised where it is awaited
            self._error = error

    @property
    def answered(self) -> bool:
        return not self._thread.is_alive()

    def wait(self) -> Checked:
        """Blocks until the checks have answered (or timed out)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._checked is not None
        return self._checked

    async def checked(self) -> Checked:
        """`wait`, without blocking the event loop."""
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join)
        return self.wait()


def _refused(name: str, by: str, why: str) -> str:
    return (
        f"error: {by} refused {name} ({why}): set it to a valid one from {HOW_TO_GET[name]}, "
        "in the environment or .env, then start again (`python -m bot doctor` checks them all)."
    )


async def _check_bot_token(settings: Settings) -> str | None:
    assert settings.slack_bot_token is not None
    slack = SlackGateway(
        AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(),
            base_url=settings.slack_api_url,
            timeout=int(PREFLIGHT_TIMEOUT_SECONDS),
        )
    )
    return await _ask_slack("SLACK_BOT_TOKEN", slack.auth_test)


async def _check_app_token(settings: Settings) -> str | None:
    assert settings.slack_app_token is not None
    token = settings.slack_app_token.get_secret_value()
    slack = SlackGateway(
        AsyncWebClient(base_url=settings.slack_api_url, timeout=int(PREFLIGHT_TIMEOUT_SECONDS))
    )
    # The URL it hands out is simply left unused; the Socket Mode client asks for its own.
    return await _ask_slack("SLACK_APP_TOKEN", lambda: slack.open_socket_connection(token))


async def _ask_slack(name: str, call: Callable[[], Awaitable[object]]) -> str | None:
    try:
        await call()
    except (TokenRejected, NotAllowed) as refused:  # this token is not accepted
        return _refused(name, "Slack", refused.code)
    except SlackError as error:  # anything else: try again later
        log.warning("Slack did not accept %s's check (%s); starting anyway", name, error.code)
    except Exception as error:  # unreachable: not a refusal, the bot retries when running
        log.warning("Cannot reach Slack to check %s (%s); starting anyway", name, _what(error))
    return None


async def _check_close_key(settings: Settings, checked: Checked) -> str | None:
    assert settings.close_api_key is not None
    async with CloseClient(
        settings.close_api_key.get_secret_value(),
        settings.close_api_url,
        timeout=httpx.Timeout(PREFLIGHT_TIMEOUT_SECONDS, connect=5.0),
        retry_attempts=1,
    ) as close:
        try:
            me = await close.me()
        except CloseAuthError as error:
            return _refused("CLOSE_API_KEY", "Close", f"HTTP {error.status_code}")
        except CloseError as error:
            log.warning("Cannot reach Close to check CLOSE_API_KEY (%s); starting anyway", error)
            return None
    if me.organizations and me.organizations[0].get("id"):
        checked.close_organization_id = str(me.organizations[0]["id"])
    return None


def posting_channels(settings: Settings) -> list[tuple[str, str]]:
    """(setting, channel id) of each channel the bot posts Close data to by itself: the
    deals channel, and the digest's channel when a digest is scheduled."""
    channels = [("DEALS_CHANNEL", settings.deals_channel)]
    if settings.digest_at is not None and settings.digest_channel not in (
        None,
        settings.deals_channel,
    ):
        channels.append(("DIGEST_CHANNEL", settings.digest_channel))
    return [(name, channel) for name, channel in channels if channel]


def external_channel(settings: Settings, name: str, channel_id: str) -> str:
    """The refusal for a DEALS_CHANNEL or DIGEST_CHANNEL shared with another organization
    (start-up and doctor)."""
    return (
        f"error: {name} {channel_id} is shared with another organization "
        f"(Slack Connect), and EXTERNAL_CHANNELS={settings.external_channels} keeps Close data "
        f"out of such channels: set {name} to one of your own channels (or "
        "EXTERNAL_CHANNELS=allow to let the other organization read your deals), then start again."
    )


async def channel_audience(slack: SlackGateway, channel_id: str) -> Audience:
    """Who reads a channel the bot posts to, asked now (start-up and doctor trust no cache)."""
    return audience_of(await slack.conversation_info(channel_id))


async def _check_posting_channels(settings: Settings) -> str | None:
    """Under EXTERNAL_CHANNELS=private or off, a DEALS_CHANNEL (or DIGEST_CHANNEL) other
    organizations read is refused. Slack not saying (no channels:read yet, unreachable) is
    logged, not refused: posts there are checked again when they happen."""
    channels = posting_channels(settings)
    if not channels or settings.external_channels == "allow":
        return None
    assert settings.slack_bot_token is not None
    slack = SlackGateway(
        AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(),
            base_url=settings.slack_api_url,
            timeout=int(PREFLIGHT_TIMEOUT_SECONDS),
        )
    )
    for name, channel_id in channels:
        try:
            audience = await channel_audience(slack, channel_id)
        except SlackError as error:
            log.warning(
                "Cannot tell who reads %s %s (%s): nothing with Close data is posted "
                "there until Slack says",
                name,
                channel_id,
                error.code,
            )
            continue
        except Exception as error:
            log.warning("Cannot reach Slack to check %s (%s); starting anyway", name, _what(error))
            return None
        if not may_show_close_data(audience, settings.external_channels):
            return external_channel(settings, name, channel_id)
    return None


def _what(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
