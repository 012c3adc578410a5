"""Shared fixtures: the whole stack (simulators + the real bot over HTTP) per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.store.db import create_engine, normalize_url
from sandbox.stack import Sandbox, running_sandbox

# Copies of Close's published OpenAPI description and Slack's manifest JSON Schema (README, Tests).
SPECS = Path(__file__).resolve().parent / "specs"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    ) as sb:
        yield sb


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh database on the test server, so runs (and other engineers' runs) never collide."""
    admin_url = normalize_url(os.environ["TEST_DATABASE_URL"])
    name = f"durability_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        async with admin.connect() as connection:
            await connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's database: a SQLite file, and (with TEST_DATABASE_URL) a fresh PostgreSQL one."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    if not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("TEST_DATABASE_URL is not set")
    url: str = request.getfixturevalue("pg_url")
    return url
