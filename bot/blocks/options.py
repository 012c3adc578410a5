"""Select options trimmed to Slack's limits (text 75, value 150): the one place options are built."""

from __future__ import annotations

from slack_sdk.models.blocks import Option, PlainTextObject

from bot.blocks.text import OPTION_TEXT, OPTION_VALUE, fit


def option(label: str, value: str) -> Option:
    return Option(text=PlainTextObject(text=fit(label, OPTION_TEXT)), value=value[:OPTION_VALUE])
