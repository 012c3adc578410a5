"""Pure parsing of what users type: one line of text -> a Draft. No network, no clock reads."""

from bot.parsing.draft import Draft

__all__ = ["Draft"]
