"""Schema migrations: Alembic, driven from code at start and by `python -m bot migrate`.

Alembic is imported only when there is something to migrate: at start a database already at
`HEAD` is only read (importing Alembic cost ~0.1 s and ~11 MB of every process)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.store.db import create_engine, normalize_url

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

# Inside the package, so an installed wheel migrates too (pyproject's package-data ships it).
MIGRATIONS = Path(__file__).with_name("migrations")
# The newest migration's revision (a test holds it to Alembic's head): a new migration moves it.
HEAD = "0010"
# Revision whose schema the pre-Alembic `create_all` built: such databases are stamped with it.
BASELINE = "0001"
# Any constant bigint: every instance migrating one PostgreSQL database takes the same lock.
ADVISORY_LOCK_KEY = 0x0C105E_0B07


def alembic_config(url: str | None = None) -> Config:
    """A Config built in code: no alembic.ini to find, whatever the working directory."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

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
        if revision == "head":
            async with engine.connect() as connection:
                if await connection.run_sync(_versions) == [HEAD]:
                    return
        async with engine.connect() as connection:
            await _lock(connection)
            await connection.run_sync(_upgrade, revision)
            await connection.commit()
    finally:
        if isinstance(target, str):
            await engine.dispose()


def fresh_sqlite(url: str) -> bool:
    """True when `url` is a SQLite file that does not exist yet: starting on it will migrate,
    so Alembic may as well be imported while start-up waits for something else."""
    parsed = make_url(normalize_url(url))
    return (
        parsed.get_backend_name() == "sqlite"
        and parsed.database not in (None, "", ":memory:")
        and not Path(str(parsed.database)).exists()
    )


def load_alembic() -> None:
    """Import what `upgrade` needs of Alembic now rather than when it runs."""
    import alembic.command
    import alembic.runtime.migration  # noqa: F401


async def current_revision(target: AsyncEngine | str) -> str | None:
    from alembic.runtime.migration import MigrationContext

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


def _versions(connection: Connection) -> list[str]:
    """The revisions the database is at (Alembic's own table, read without Alembic)."""
    if not inspect(connection).has_table("alembic_version"):
        return []
    return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext

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
