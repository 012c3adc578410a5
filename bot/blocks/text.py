"""Text helpers for Block Kit: escaping for mrkdwn and trimming to Slack's limits."""

from __future__ import annotations

# Slack's limits, in one place (SLACK.md). Builders trim to these instead of being rejected.
MODAL_TITLE = 24
BUTTON_TEXT = 75
OPTION_TEXT = 75
OPTION_VALUE = 150
PLACEHOLDER = 150
LABEL = 2000
HINT = 2000
SECTION_TEXT = 3000
SECTION_FIELD = 2000
HEADER_TEXT = 150
CONTEXT_TEXT = 2000
MESSAGE_TEXT = 4000
PRIVATE_METADATA = 3000
OPTIONS_PER_SELECT = 100
MODAL_BLOCKS = 100
MESSAGE_BLOCKS = 50
PLAIN_TEXT_INPUT = 3000

_ELLIPSIS = "…"


def fit(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, with an ellipsis when something was cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + _ELLIPSIS


def escape(text: str) -> str:
    """Escape user or Close text for mrkdwn so `<!channel>`, `<@U1>` or `<http://x|y>` stay inert."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit_mrkdwn(text: str, limit: int) -> str:
    """Escape, then trim without cutting an entity such as `&amp;` in half."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: max(limit - 1, 0)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + _ELLIPSIS
