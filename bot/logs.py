"""Logging set-up: one line per event (text, or one JSON object with `LOG_FORMAT=json`), with the
configured secrets redacted wherever they appear."""

from __future__ import annotations

import base64
import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import structlog
from structlog.typing import EventDict, WrappedLogger

# Anything shaped like a credential, known or not: Slack tokens, Close keys, and the value of an
# Authorization header however it is printed (dict repr, "key: value", httpcore's byte tuples).
_TOKEN_SHAPES = re.compile(
    # xwfp-: a workflow step execution's token (it arrives in the function_executed event).
    r"(xox[abposre]-[0-9A-Za-z-]{8,}|xapp-[0-9A-Za-z-]{8,}|xwfp-[0-9A-Za-z-]{8,}"
    r"|api_[0-9A-Za-z]{6,}\.[0-9A-Za-z]{6,}"
    r"|(?i:authorization)[\"']?\s*[:=,]\s*b?[\"']?(?:Basic|Bearer)\s+[A-Za-z0-9+/=._-]+)"
)
REDACTED = "[redacted]"
_MIN_SECRET = 6  # shorter "secrets" would redact ordinary words


def _variants(secret: str) -> set[str]:
    """The secret and the forms it travels in: HTTP Basic (Close's key is the username)."""
    found = {secret}
    for raw in (f"{secret}:", secret):
        encoded = base64.b64encode(raw.encode()).decode()
        found.add(encoded)
        found.add(encoded.rstrip("="))
    return found


class RedactSecrets(logging.Filter):
    """Replaces every known secret (and anything shaped like a Slack/Close token) with [redacted]."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        known = set(self._secrets)
        for secret in secrets:
            if secret and len(secret) >= _MIN_SECRET:
                known |= {v for v in _variants(secret) if len(v) >= _MIN_SECRET}
        # Longest first, so a secret that contains another is removed whole.
        self._secrets = sorted(known, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _TOKEN_SHAPES.sub(REDACTED, text)

    def scrub(self, record: logging.LogRecord) -> None:
        """Redact a record in place: message template, arguments, traceback and stack."""
        if isinstance(record.msg, str):
            record.msg = self.redact(record.msg)
        elif record.msg is not None:
            text = str(record.msg)
            if self.redact(text) != text:
                record.msg = self.redact(text)
        if record.args:
            record.args = self._scrub_args(record.args)
        if record.exc_info and not record.exc_text:
            # Formatted now, so every handler (stderr, pytest's caplog, uvicorn's) gets the
            # redacted traceback instead of formatting the raw one itself.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)

    def _scrub_args(self, args: Any) -> Any:
        if isinstance(args, dict):
            return {key: self._scrub_arg(value) for key, value in args.items()}
        if isinstance(args, tuple):
            return tuple(self._scrub_arg(value) for value in args)
        return self._scrub_arg(args)

    def _scrub_arg(self, value: Any) -> Any:
        if isinstance(value, bool | int | float) or value is None:
            return value  # %d / %f placeholders need the number itself
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, bytes):
            text = value.decode("utf-8", "replace")
            return value if self.redact(text) == text else self.redact(text).encode()
        try:
            text = str(value)
        except Exception:  # a broken __str__ must not break logging
            return value
        redacted = self.redact(text)
        # Objects stay objects (so %r still shows their repr) unless they carry a secret.
        return value if redacted == text else redacted

    def filter(self, record: logging.LogRecord) -> bool:
        self.scrub(record)
        return True


# One redactor for the whole process, applied when each record is made: handlers added later
# (pytest's caplog, uvicorn's, a library's own) only ever see redacted records.
_redactor = RedactSecrets()
_install_lock = threading.Lock()
_installed = False


def redactor() -> RedactSecrets:
    return _redactor


def redact(text: str) -> str:
    """`text` with every registered secret (and anything token-shaped) replaced by [redacted]."""
    return _redactor.redact(text)


def redact_secrets(secrets: Iterable[str]) -> None:
    """Register `secrets` with the process-wide redactor and make sure every log record passes it."""
    global _installed
    _redactor.add(secrets)
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            try:
                _redactor.scrub(record)
            except Exception:  # never lose a log line to the redactor: drop its content instead
                record.msg, record.args, record.exc_text = REDACTED, None, None
            return record

        logging.setLogRecordFactory(make_record)
        _installed = True


class EffectiveLevel(logging.LoggerAdapter[logging.Logger]):
    """`logger` for slack_sdk's Web API client, whose `level` is the level in force.

    slack_sdk tests `logger.level <= DEBUG` (the logger's own level: 0 when unset, as it
    almost always is) and then formats its debug lines whether or not debug is on: every
    Web API call printed its whole request and answer (a modal is ~15 KB) into strings that
    nobody logged (~2% of the bot's CPU). The effective level still follows any change made
    later (LOG_LEVEL=DEBUG, a test raising a parent logger to DEBUG).
    """

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})

    @property
    def level(self) -> int:
        return self.logger.getEffectiveLevel()


def bind(**values: str | None) -> None:
    """Say what the log lines of the current task (and of the tasks it starts) are about.

    asyncio gives each task a copy of its creator's context, so a value bound while handling
    one request or one submission never shows on another's lines.
    """
    structlog.contextvars.bind_contextvars(
        **{key: value for key, value in values.items() if value is not None}
    )


def bind_slack(body: Mapping[str, Any]) -> None:
    """The Slack user and team a request comes from, for the lines logged while handling it."""
    user = body.get("user")
    team = body.get("team")
    bind(
        slack_user=_text(body.get("user_id"))
        or _text(user.get("id") if isinstance(user, dict) else user),
        slack_team=_text(body.get("team_id"))
        or _text(team.get("id") if isinstance(team, dict) else team),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _from_record(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """The traceback as the record already holds it, redacted (never formatted again here from
    the raw exception, whose text the redactor has not seen)."""
    record = event.get("_record")
    event.pop("exc_info", None)
    if isinstance(record, logging.LogRecord):
        event["logger"] = record.name
        if record.exc_text:
            event["exception"] = record.exc_text
        if record.stack_info:
            event["stack"] = record.stack_info
    event.pop("stack_info", None)
    return event


def _redact_values(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = _redactor.redact(value)
    return event


def json_formatter() -> logging.Formatter:
    """One JSON object per line: timestamp, level, logger, message, exception, and the bound
    context (submission, Slack user/team, Close request) — structlog's renderer over stdlib
    records, so every library's lines come out the same way."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.stdlib.add_log_level,
            _from_record,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.EventRenamer("message"),
            _redact_values,
            structlog.processors.JSONRenderer(ensure_ascii=False, default=str),
        ],
    )


def text_formatter() -> logging.Formatter:
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")


def configure(
    level: str = "INFO",
    *,
    secrets: Iterable[str] = (),
    fmt: Literal["text", "json"] = "text",
) -> None:
    """Log to stderr at `level` in `fmt`, with `secrets` redacted from every record (and the handler)."""
    redact_secrets(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else text_formatter())
    handler.addFilter(_redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # alembic.runtime.plugins: seven "setup plugin" lines at INFO on every start.
    for noisy in (
        "httpx",
        "httpcore",
        "slack_sdk",
        "aiosqlite",
        "asyncio",
        "alembic.runtime.plugins",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # uvicorn logs through the root handler (the runners pass it no logging config of its own),
    # so its lines come out in the same format; its per-start chatter stays out.
    logging.getLogger("uvicorn").setLevel(max(logging.WARNING, root.level))
