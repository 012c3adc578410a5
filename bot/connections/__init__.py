"""Per-person Close access: people connect their own Close account (OAuth), and the app gets a
valid access token for a (team, Slack user) — refreshed once across processes."""

from bot.connections.access import (
    AccessBroken,
    AccessUnavailable,
    CloseAccess,
    NotConnected,
    build_access,
)
from bot.connections.clients import CloseClients, PersonClose
from bot.connections.seal import Sealer
from bot.connections.store import Connection, ConnectionStore, StateStore

__all__ = [
    "AccessBroken",
    "AccessUnavailable",
    "CloseAccess",
    "CloseClients",
    "Connection",
    "ConnectionStore",
    "NotConnected",
    "PersonClose",
    "Sealer",
    "StateStore",
    "build_access",
]
