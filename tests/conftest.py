"""Shared fixtures: the whole stack (simulators + the real bot over HTTP) per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox.stack import Sandbox, running_sandbox

SHARED = Path(__file__).resolve().parents[2] / "shared"


def shared_path(*parts: str) -> Path:
    """A file of ../shared (the specs), or skip when this checkout has none beside it."""
    base = Path(os.environ.get("SHARED_DIR", SHARED))
    path = base.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    ) as sb:
        yield sb
