"""Who is who: Slack users' profiles (zone, locale, email) and the Close user each maps to."""

from bot.identity.mapping import Mapping, decide
from bot.identity.profiles import EMAIL_SCOPE, SlackProfile, granted_scopes
from bot.identity.service import Coverage, CoverageRow, Identity, LinkRefused

__all__ = [
    "EMAIL_SCOPE",
    "Coverage",
    "CoverageRow",
    "Identity",
    "LinkRefused",
    "Mapping",
    "SlackProfile",
    "decide",
    "granted_scopes",
]
