"""The bot's configuration, read from the environment and an optional `.env` file."""

from __future__ import annotations

import base64
from datetime import time
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.times import STEP_GIVE_UP_LIMIT_SECONDS, WeeklyTime, parse_time_of_day, parse_weekly

DEFAULT_DATABASE_URL = f"sqlite+aiosqlite:///{Path.cwd() / 'opportunity-bot.sqlite3'}"

# What each required variable is and where to get it, shown when one is missing.
HOW_TO_GET: dict[str, str] = {
    "SLACK_BOT_TOKEN": "Slack app settings > OAuth & Permissions > Bot User OAuth Token (xoxb-...)",
    "SLACK_SIGNING_SECRET": "Slack app settings > Basic Information > App Credentials > "
    "Signing Secret",
    "SLACK_APP_TOKEN": "Slack app settings > Basic Information > App-Level Tokens, scope "
    "connections:write (xapp-...)",
    "CLOSE_API_KEY": "Close > Settings > Developer > API Keys (api_...)",
}


def _split_ids(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Environment variables of the contract in PRODUCT.md, plus a few optional ones."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    close_api_key: SecretStr | None = None
    close_api_url: str = "https://api.close.com/api/v1/"
    slack_api_url: str = "https://slack.com/api/"
    close_app_url: str = "https://app.close.com/"
    # Seconds to wait for Close's answer; a write left unanswered is reconciled, never re-sent.
    close_timeout_seconds: float = 15.0
    database_url: str = DEFAULT_DATABASE_URL
    port: int = 3000
    log_level: str = "INFO"
    # `json`: one JSON object per line (level, logger, message and what the line is about).
    log_format: Literal["text", "json"] = "text"
    # Socket Mode and `worker` serve GET /metrics, /healthz and /readyz on this port when set
    # (`serve` has them on its own port).
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Channel id where every new opportunity is also announced (updates go in its thread).
    deals_channel: str | None = None
    # Channels shared with another organization (Slack Connect): `private` keeps Close data out
    # of what they can read, `allow` treats them like any channel, `off` declines there.
    external_channels: Literal["private", "allow", "off"] = "private"
    # `on`: Close lead links unfurl as Slack Work Objects (a card, and a flexpane read as the
    # person who opens it); `off`: Block Kit previews.
    work_objects: Literal["on", "off"] = "off"
    # How long a process trusts what it learned about a channel before asking again.
    channel_audience_ttl_seconds: float = Field(default=3600.0, gt=0)
    admin_user_ids: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Who may use the bot, and where (empty: everyone, everywhere); admins are always allowed.
    allowed_user_ids: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_channel_ids: Annotated[list[str], NoDecode] = Field(default_factory=list)
    catalog_refresh_seconds: float = 300.0
    # The start-up warm-up waits this long for Slack and Close (bot.runtime.warm_up), then
    # ends without what did not answer; /readyz answers 503 "warm-up" until it ends.
    warm_up_seconds: float = Field(default=10.0, gt=0)
    # Pipeline (name or id) whose first status is preselected when the user has no last choice.
    default_pipeline: str | None = None
    # The worker that creates stored submissions in Close.
    worker_poll_seconds: float = 1.0
    # Renewed while working, so a crashed worker's claim frees within 30 s.
    worker_lease_seconds: float = 30.0
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    retry_give_up_seconds: float = 6 * 3600.0
    # A Workflow Builder step waits at most this long (from when Slack ran it) for Close, then
    # fails with a clear error: a workflow should not sit "in progress" for hours. At most
    # STEP_GIVE_UP_LIMIT_SECONDS: Slack's token for completing the step dies soon after.
    workflow_step_give_up_seconds: float = Field(default=600.0, gt=0)
    # Close -> Slack: with a public URL (HTTP mode) Close pushes changes to PUBLIC_URL/close/webhook;
    # without one the event log is read every CLOSE_EVENTS_POLL_SECONDS (0: never).
    public_url: str | None = None
    close_events_poll_seconds: float = Field(default=30.0, ge=0)
    # Per-person Close access (PRODUCT.md): a Close OAuth app of the same org lets people
    # connect their own Close account; their tokens are sealed with TOKEN_ENCRYPTION_KEY.
    close_oauth_client_id: str | None = None
    close_oauth_client_secret: SecretStr | None = None
    close_oauth_authorize_url: str = "https://app.close.com/oauth2/authorize/"
    close_oauth_token_url: str = "https://api.close.com/oauth2/token/"
    # `key`, `personal` or `either`; unset: `either` with OAuth configured, else `key`.
    close_access: Literal["key", "personal", "either"] | None = None
    # Fernet keys, comma-separated: the first seals, any opens (rotation).
    token_encryption_key: SecretStr | None = None
    # Local time of day ("HH:MM", each owner's own Slack zone) of the overdue-deals DM; empty:
    # never.
    nudge_time: str = "09:00"
    # How often scheduled sends that fell due are looked for (no Close call: cheap).
    schedule_plan_seconds: float = Field(default=60.0, gt=0)
    # The weekly pipeline digest: weekday and local time ("mon 09:00") in DIGEST_TZ; empty:
    # never. Posted to DIGEST_CHANNEL, else DEALS_CHANNEL (neither: no digest).
    digest_time: str = "mon 09:00"
    digest_tz: str = "UTC"
    digest_channel: str | None = None
    # Owner alerts: the first change to a person's deal made in Close by someone else opens a
    # window this long; every change to their deals within it goes in that one DM.
    alert_window_seconds: float = Field(default=60.0, gt=0)

    @field_validator("workflow_step_give_up_seconds")
    @classmethod
    def _within_the_steps_token_life(cls, value: float) -> float:
        """Refused, not clamped: a longer wait cannot work (the step's token dies first and
        the workflow is never told), and whoever set it learns so at start, not from a log."""
        if value > STEP_GIVE_UP_LIMIT_SECONDS:
            raise ValueError(
                f"must be at most {STEP_GIVE_UP_LIMIT_SECONDS:.0f} (got {value:g}): Slack's token "
                "for completing a workflow step lives about 15 minutes from the step's start, so "
                "a step still waiting for Close after that could never be told how it ended"
            )
        return value

    @field_validator("admin_user_ids", "allowed_user_ids", "allowed_channel_ids", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _split_ids(value)

    @field_validator(
        "close_oauth_client_id", "close_oauth_client_secret", "token_encryption_key", mode="before"
    )
    @classmethod
    def _blank_secret_is_unset(cls, value: object) -> object:
        return (value.strip() or None) if isinstance(value, str) else value

    @field_validator("close_access", mode="before")
    @classmethod
    def _access(cls, value: object) -> object:
        return (value.strip().lower() or None) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _oauth_complete(self) -> Settings:
        """Refuse a half-configured Close OAuth: people would meet the failure, not the admin."""
        problem = oauth_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @field_validator("external_channels", mode="before")
    @classmethod
    def _external(cls, value: object) -> object:
        return (value.strip().lower() or "private") if isinstance(value, str) else value

    @field_validator("nudge_time")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        parse_time_of_day(value)  # a bad one is refused at start, not at 09:00
        return value.strip()

    @field_validator("digest_time")
    @classmethod
    def _weekday_and_time(cls, value: str) -> str:
        parse_weekly(value)  # a bad one is refused at start, not on Monday
        return value.strip()

    @field_validator("digest_tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"{value!r} is not an IANA time zone like Europe/Berlin") from error
        return value.strip()

    @property
    def digest_at(self) -> WeeklyTime | None:
        """DIGEST_TIME as a weekday and time; None: no digest."""
        return parse_weekly(self.digest_time)

    @property
    def digest_to(self) -> str | None:
        """The channel the digest goes to: DIGEST_CHANNEL, else DEALS_CHANNEL."""
        return self.digest_channel or self.deals_channel

    @property
    def nudge_at(self) -> time | None:
        """NUDGE_TIME as a time of day; None: nudges are off."""
        return parse_time_of_day(self.nudge_time)

    @field_validator("work_objects", mode="before")
    @classmethod
    def _on_off(cls, value: object) -> object:
        return (value.strip().lower() or "off") if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("close_api_url", "slack_api_url", "close_app_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith(("https://", "http://")):
            raise ValueError("PUBLIC_URL must start with https:// (e.g. https://bot.example.com)")
        return value.rstrip("/") + "/"

    @property
    def close_webhook_url(self) -> str | None:
        """Where Close delivers changes, when the app has a public URL."""
        return f"{self.public_url}close/webhook" if self.public_url else None

    @property
    def oauth_configured(self) -> bool:
        """People can connect their own Close account (CLOSE_OAUTH_CLIENT_ID and _SECRET set)."""
        return self.close_oauth_client_id is not None and self.close_oauth_client_secret is not None

    @property
    def access(self) -> Literal["key", "personal", "either"]:
        """CLOSE_ACCESS as it applies: unset means `either` with OAuth configured, else `key`."""
        if self.close_access is not None:
            return self.close_access
        return "either" if self.oauth_configured else "key"

    @property
    def close_oauth_redirect_uri(self) -> str | None:
        """Where Close's consent page sends people back (PUBLIC_URL/close/oauth/callback)."""
        return f"{self.public_url}close/oauth/callback" if self.public_url else None

    def close_oauth_start_url(self, state: str) -> str | None:
        """The link a *Connect Close* button opens: our start route, which sends on to Close."""
        if not self.public_url:
            return None
        return f"{self.public_url}close/oauth/start?state={state}"

    @property
    def work_objects_on(self) -> bool:
        return self.work_objects == "on"

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    def missing_for(self, mode: str) -> list[str]:
        """Names of the variables that `mode` ("serve", "socket" or "worker") needs and lacks."""
        needed = ["SLACK_BOT_TOKEN", "CLOSE_API_KEY"]
        if mode == "socket":
            needed.append("SLACK_APP_TOKEN")
        elif mode == "serve":
            needed.append("SLACK_SIGNING_SECRET")
        return [name for name in needed if getattr(self, name.lower()) is None]

    def processes_refusal(self, workers: int) -> str | None:
        """The one line `serve --workers N` ends with when N processes cannot share the
        database's queue (a SQLite file); None when they can."""
        if workers <= 1 or self.database_url.startswith(("postgresql", "postgres:")):
            return None
        return (
            f"error: serve --workers {workers} needs PostgreSQL (DATABASE_URL=postgresql://…): "
            "processes cannot share a SQLite file's queue; use --workers 1 with SQLite."
        )

    def secret_values(self) -> list[str]:
        """The configured secrets, for log redaction."""
        secrets = (
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.close_api_key,
            self.close_oauth_client_secret,
        )
        values = [s.get_secret_value() for s in secrets if s is not None]
        if self.token_encryption_key is not None:
            values += split_keys(self.token_encryption_key.get_secret_value())
        return values


def split_keys(value: str) -> list[str]:
    """TOKEN_ENCRYPTION_KEY's keys, in order (the first seals, any opens)."""
    return [part.strip() for part in value.split(",") if part.strip()]


NEW_KEY_COMMAND = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


def oauth_problem(settings: Settings) -> str | None:
    """Why the Close OAuth configuration cannot work, in one line for the admin; None if it can."""
    has_id = settings.close_oauth_client_id is not None
    has_secret = settings.close_oauth_client_secret is not None
    if has_id != has_secret:
        missing = "CLOSE_OAUTH_CLIENT_SECRET" if has_id else "CLOSE_OAUTH_CLIENT_ID"
        return (
            f"{missing} is not set: Close OAuth needs both CLOSE_OAUTH_CLIENT_ID and "
            "CLOSE_OAUTH_CLIENT_SECRET (Close > Settings > Developer > OAuth Apps)."
        )
    if not has_id:
        if settings.close_access == "personal":
            return (
                "CLOSE_ACCESS=personal needs Close OAuth: set CLOSE_OAUTH_CLIENT_ID and "
                "CLOSE_OAUTH_CLIENT_SECRET, or use CLOSE_ACCESS=key."
            )
        return None
    if settings.public_url is None:
        return (
            "Close OAuth needs PUBLIC_URL: Close sends people back to "
            "PUBLIC_URL/close/oauth/callback (register that as the OAuth app's redirect URI)."
        )
    if settings.token_encryption_key is None:
        return (
            "Close OAuth needs TOKEN_ENCRYPTION_KEY to keep people's Close tokens encrypted "
            f"at rest. Make one with: {NEW_KEY_COMMAND}"
        )
    keys = split_keys(settings.token_encryption_key.get_secret_value())
    if not keys or not all(_fernet_key(key) for key in keys):
        return (
            "TOKEN_ENCRYPTION_KEY must be one or more comma-separated Fernet keys (32 url-safe "
            f"base64-encoded bytes each). Make one with: {NEW_KEY_COMMAND}"
        )
    return None


def _fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
    except (ValueError, UnicodeEncodeError):
        return False
