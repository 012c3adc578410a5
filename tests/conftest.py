"""Shared fixtures: the whole stack (simulators + the real bot over HTTP) per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox.stack import Sandbox, running_sandbox

# Copies of Close's published OpenAPI description and Slack's manifest JSON Schema (README, Tests).
SPECS = Path(__file__).resolve().parent / "specs"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    ) as sb:
        yield sb
