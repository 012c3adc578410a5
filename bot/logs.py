"""Logging set-up: one line per event, with the configured secrets redacted wherever they appear."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

_TOKEN_SHAPES = re.compile(
    r"(xox[abposr]-[0-9A-Za-z-]{8,}|xapp-[0-9A-Za-z-]{8,}|api_[0-9A-Za-z]{6,}\.[0-9A-Za-z]{6,}"
    r"|(?i:authorization)[\"']?\s*[:=]\s*[\"']?(?:Basic|Bearer)\s+[A-Za-z0-9+/=._-]+)"
)
REDACTED = "[redacted]"


class RedactSecrets(logging.Filter):
    """Replaces every known secret (and anything shaped like a Slack/Close token) with [redacted]."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return _TOKEN_SHAPES.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def configure(level: str = "INFO", *, secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "slack_sdk", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
