"""Engine and session factory for the configured DATABASE_URL (SQLite in WAL mode by default)."""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Connection, Engine, Table, event, insert, update
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError, InvalidatePoolError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from bot.tasks import answers_first


def normalize_url(url: str) -> str:
    """Use the async drivers whatever scheme the operator wrote (postgres://, sqlite:///…)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


# PostgreSQL: a process keeps the connections it opened, up to the ceiling it always had
# (SQLAlchemy's 5 + 10 overflow). Overflow connections were closed on return and opened again
# under load: a TCP, TLS-attempt and auth handshake plus asyncpg's setup each time.
PG_POOL_SIZE = 15
# A pooled connection unused for this long is pinged before use (asyncpg's ping is three
# round trips: BEGIN, ";", ROLLBACK); one used within it is trusted. Pinging on every
# checkout cost ~6% of the process's CPU at 20 flows/s, where each pooled connection is used
# every ~0.1 s. The price: a connection killed within a second of its last use (a server
# restarted faster than that, pg_terminate_backend) fails the one statement it is used for,
# and SQLAlchemy then drops the whole pool, as for any disconnect; with a slower restart the
# statements fail while the server is down, pinged or not.
PG_IDLE_PING_SECONDS = 1.0


def create_engine(url: str, *, idle_ping_seconds: float = PG_IDLE_PING_SECONDS) -> AsyncEngine:
    url = normalize_url(url)
    is_sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any] = {}
    if is_sqlite:
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(pool_size=PG_POOL_SIZE, max_overflow=0)
    engine = create_async_engine(url, **kwargs)
    if is_sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        event.listen(engine.sync_engine, "checkin", _note_checkin)
        event.listen(engine.sync_engine, "checkout", _idle_pinger(idle_ping_seconds))
    return engine


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info["checked_in_at"] = time.monotonic()


def _idle_pinger(idle_seconds: float) -> Callable[[Any, Any, Any], None]:
    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        """`pool_pre_ping`, only for connections left unused a while (a fresh one is not)."""
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_seconds:
            return
        try:
            dbapi_connection.ping()
        except Exception as error:  # the pool reconnects, and drops the older connections
            raise InvalidatePoolError() from error

    return ping_if_idle


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run while the worker writes; a busy timeout instead of "database is locked".
    # Durability: in WAL a commit has written its pages to the WAL file before it returns, so a
    # submission acked survives the process dying (crash, SIGKILL). synchronous=NORMAL does not
    # fsync each commit: a power loss or OS crash can take the last commits back (the file stays
    # consistent). FULL would add an fsync to every transaction, the ack's insert included.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _no_busy_wait(dbapi_connection: Any, record: Any) -> None:
    """The writer's pragmas, but a locked file answers at once ("database is locked"), and the
    WAL is never checkpointed from here (the writer thread's commits do it, off the loop)."""
    _sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _is_locked(error: OperationalError) -> bool:
    return "locked" in str(error.orig) or "busy" in str(error.orig)


def dialect_insert(dialect: str) -> Callable[..., Any]:
    """The dialect's own INSERT (it has ON CONFLICT): PostgreSQL's or SQLite's, imported when
    first asked for, so a SQLite deployment never loads PostgreSQL's dialect (~2 MB, 25 ms)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def create_schema(engine: AsyncEngine) -> None:
    """Kept for callers written before migrations: the schema now comes from Alembic."""
    from bot.store.migrate import upgrade  # migrate imports this module

    await upgrade(engine)


# --- writes ----------------------------------------------------------------------------------

T = TypeVar("T")
# Lower runs first: an insert a user is waiting on (the submission's ack) goes before the
# worker's bookkeeping.
URGENT, NORMAL = 0, 1


class Writer:
    """Runs the store's transactions, each a sync function of a `Session` (`run`) or of a Core
    `Connection` (`run_core`, the hot path's statements) that commits as a whole.

    SQLite has one writer at a time. Through aiosqlite every statement and the commit are a
    round trip between the event loop and the connection's thread, so under load a
    transaction held the file lock across several busy loop turns while the other
    connections slept in SQLite's busy handler (up to 100 ms a nap): an ack's insert waited
    behind the worker's writes for seconds. Here one thread with its own connection runs
    every write of the process back to back, urgent ones first, one hop each way.
    Reads an ack waits on go there too (`run_core(..., urgent=True)`): one hop instead of
    aiosqlite's several (pool checkout, execute, fetch, reset), about a tenth of the CPU;
    SQLite serves them from the same connection without blocking other processes (WAL).
    An urgent single statement goes further (`_at_once`): run right in the loop's thread on a
    connection of its own when the file is free this instant (no hop at all), queued when a
    write holds it; in a burst the hops, each waiting its turn in a busy loop, were most of a
    submission's ack. Bookkeeping (not urgent) waits while requests are being answered.
    Other databases (PostgreSQL) have row locks and a real pool: the same functions run in an
    `AsyncSession` (or an `AsyncConnection`) there, concurrently.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        url = engine.url
        self._thread_url: URL | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._engine: AsyncEngine | None = None
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            self._thread_url = url.set(drivername="sqlite+pysqlite")
        else:
            self._sessions = session_factory(engine)
            self._engine = engine
            self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._queue: queue.PriorityQueue[_Job] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._at_once_engine: Engine | None = None  # SQLite: the loop thread's own connection

    async def run(self, work: Callable[[Session], T], *, urgent: bool = False) -> T:
        if self._sessions is not None:
            async with self._sessions.begin() as session:
                return await session.run_sync(work)
        return await self._queued(work, urgent=urgent, core=False)

    async def run_core(
        self, work: Callable[[Connection], T], *, urgent: bool = False, one_statement: bool = False
    ) -> T:
        """`work` on a Core connection in one transaction: no ORM unit of work, identity map
        or Session, for statements built once (module level) and executed with parameters.

        `one_statement`: `work` runs a single statement, atomic on its own: on PostgreSQL it
        runs in autocommit, without the BEGIN and COMMIT round trips (about a third of such a
        write's CPU there). SQLite's thread runs everything the same way.
        """
        if self._engine is not None:
            if one_statement:
                async with self._autocommit.connect() as connection:
                    return await connection.run_sync(work)
            async with self._engine.begin() as connection:
                return await connection.run_sync(work)
        if urgent and one_statement:
            done, result = self._at_once(work)
            if done:
                return cast(T, result)
        return await self._queued(work, urgent=urgent, core=True)

    def _at_once(self, work: Callable[[Connection], T]) -> tuple[bool, T | None]:
        """SQLite: an urgent statement (an ack's insert, or a read it waits on) run right here
        when the database can take it this instant, without the two thread hops: (True, its
        result). A write finding the file locked (this process's writer thread, or another
        process, is mid-transaction) does not wait: (False, None), and it is queued instead.
        Under a burst the hops, each waiting its turn in a busy loop, were most of the ack."""
        if self._at_once_engine is None:
            assert self._thread_url is not None
            engine = sa_create_engine(
                self._thread_url, connect_args={"timeout": 0}, poolclass=StaticPool
            )
            event.listen(engine, "connect", _no_busy_wait)
            self._at_once_engine = engine
        try:
            with self._at_once_engine.begin() as connection:
                return True, work(connection)
        except OperationalError as error:
            if not _is_locked(error):
                raise
            return False, None

    async def _queued(self, work: Callable[[Any], T], *, urgent: bool, core: bool) -> T:
        if not urgent:
            # Bookkeeping waits while requests are being answered: their inserts go first, and
            # the one thread is not busy with a write of ours when one of them comes.
            await answers_first()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._start()
        priority = URGENT if urgent else NORMAL
        self._queue.put(_Job(priority, next(self._seq), work, loop, future, core))
        result: T = await future
        return result

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="sqlite-writer", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Finish what is queued, then stop the thread (a later write starts it again)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_Job(NORMAL + 1, next(self._seq), None, None, None, False))
            thread.join(timeout=10)
        if self._at_once_engine is not None:
            self._at_once_engine.dispose()
            self._at_once_engine = None

    def _serve(self) -> None:
        assert self._thread_url is not None
        engine = sa_create_engine(
            self._thread_url, connect_args={"timeout": 30}, poolclass=StaticPool
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        try:
            while True:
                job = self._queue.get()
                if job.work is None:
                    return
                try:
                    if job.core:
                        with engine.begin() as connection:
                            result = job.work(connection)
                    else:
                        with Session(engine, expire_on_commit=False) as session, session.begin():
                            result = job.work(session)
                except Exception as error:  # handed to the caller awaiting it
                    _hand_back(job, error=error)
                else:
                    _hand_back(job, result=result)
        finally:
            engine.dispose()


@dataclass(order=True)
class _Job:
    priority: int
    seq: int
    work: Callable[[Any], Any] | None = field(compare=False)  # of a Session, or a Connection
    loop: asyncio.AbstractEventLoop | None = field(compare=False)
    future: asyncio.Future[Any] | None = field(compare=False)
    core: bool = field(compare=False)


def _hand_back(job: _Job, *, result: Any = None, error: BaseException | None = None) -> None:
    def settle() -> None:
        assert job.future is not None
        if job.future.done():  # the caller gave up waiting; the write stands all the same
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    if job.loop is not None and not job.loop.is_closed():
        job.loop.call_soon_threadsafe(settle)


# Keyed by the sync engine, weakly: a SQLite writer keeps only the URL, so it goes with it.
_writers: weakref.WeakKeyDictionary[Engine, Writer] = weakref.WeakKeyDictionary()
_writers_lock = threading.Lock()


def writer_for(sessions: async_sessionmaker[AsyncSession]) -> Writer:
    """The one `Writer` of the engine `sessions` are bound to; disposing the engine stops its
    thread (a later write starts it again, as a disposed engine reconnects)."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        raise TypeError("the session factory must be bound to an AsyncEngine")
    engine = bind.sync_engine
    with _writers_lock:
        writer = _writers.get(engine)
        if writer is None:
            writer = _writers[engine] = Writer(bind)
            event.listen(engine, "engine_disposed", _close_writer)
    return writer


def _close_writer(engine: Engine) -> None:
    writer = _writers.get(engine)
    if writer is not None:
        writer.close()


# One INSERT statement per table, built once: its compiled form stays in SQLAlchemy's cache.
_inserts: dict[Table, Any] = {}


async def update_where(
    writer: Writer, model: type[Any], where: ColumnElement[bool], **values: Any
) -> bool:
    """UPDATE `model`'s rows matching `where` in one write transaction: True if any matched
    (the stores' compare-and-set: a claim still held, a state not yet moved on)."""
    # Core on the table: the ORM's bulk-update bookkeeping is not needed for a compare-and-set.
    statement = update(model.__table__).where(where).values(**values)

    def write(connection: Connection) -> bool:
        return bool(connection.execute(statement).rowcount)

    return await writer.run_core(write, one_statement=True)


async def insert_once(
    writer: Writer,
    table: Table,
    values: dict[str, Any],
    to_model: Callable[[dict[str, Any]], T],
    stored: Callable[[], Awaitable[T | None]],
) -> tuple[T, bool]:
    """Insert the row `values` into `table` before an ack: (`to_model(values)`, True) the first
    time, (the stored one, False) when its unique key is taken already (a double tap, a
    redelivery, another instance first). Every column not in `values` must be nullable."""
    statement = _inserts.get(table)
    if statement is None:
        statement = _inserts[table] = insert(table)

    def write(connection: Connection) -> None:
        connection.execute(statement, values)

    try:
        # Urgent: an ack waits on this insert; the worker's bookkeeping can wait.
        await writer.run_core(write, urgent=True, one_statement=True)
        return to_model(values), True
    except IntegrityError:
        existing = await stored()
        if existing is None:  # pragma: no cover - the unique key says it exists
            raise
        return existing, False
