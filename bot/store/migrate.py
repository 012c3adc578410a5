"""Schema migrations: Alembic, driven from code at start and by `python -m bot migrate`."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.store.db import create_engine

log = logging.getLogger(__name__)

# Inside the package, so an installed wheel migrates too (pyproject's package-data ships it).
MIGRATIONS = Path(__file__).with_name("migrations")
# Revision whose schema the pre-Alembic `create_all` built: such databases are stamped with it.
BASELINE = "0001"
# Any constant bigint: every instance migrating one PostgreSQL database takes the same lock.
ADVISORY_LOCK_KEY = 0x0C105E_0B07


def alembic_config(url: str | None = None) -> Config:
    """A Config built in code: no alembic.ini to find, whatever the working directory."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found in " + str(MIGRATIONS)
    return head


async def upgrade(target: AsyncEngine | str, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe when several instances start at once.

    PostgreSQL: a transaction-scoped advisory lock makes concurrent upgrades queue, and the
    DDL commits (or rolls back) as a whole. SQLite: `BEGIN IMMEDIATE` takes the write lock
    first, so a second process waits for the first instead of racing it.
    """
    engine = create_engine(target) if isinstance(target, str) else target
    try:
        async with engine.connect() as connection:
            await _lock(connection)
            await connection.run_sync(_upgrade, revision)
            await connection.commit()
    finally:
        if isinstance(target, str):
            await engine.dispose()


async def current_revision(target: AsyncEngine | str) -> str | None:
    engine = create_engine(target) if isinstance(target, str) else target
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        if isinstance(target, str):
            await engine.dispose()


async def _lock(connection: AsyncConnection) -> None:
    if connection.dialect.name == "postgresql":
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
        )
    elif connection.dialect.name == "sqlite":
        # pysqlite would only BEGIN before DML, leaving DDL in autocommit: be explicit.
        await connection.exec_driver_sql("BEGIN IMMEDIATE")


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    before = MigrationContext.configure(connection).get_current_revision()
    if before is None and inspect(connection).has_table("submissions"):
        log.info("Database predates migrations: stamping it as revision %s", BASELINE)
        command.stamp(config, BASELINE)
    command.upgrade(config, revision)
    after = MigrationContext.configure(connection).get_current_revision()
    if after != before:
        log.info("Database schema upgraded from %s to %s", before or "nothing", after)
