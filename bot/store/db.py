"""Engine and session factory for the configured DATABASE_URL (SQLite in WAL mode by default)."""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Engine, event, update
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool


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


def create_engine(url: str) -> AsyncEngine:
    url = normalize_url(url)
    is_sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any] = {"pool_pre_ping": not is_sqlite}
    if is_sqlite:
        kwargs["connect_args"] = {"timeout": 30}
    engine = create_async_engine(url, **kwargs)
    if is_sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run while the worker writes; a busy timeout instead of "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


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
    """Runs write transactions, each a sync function of a `Session` that commits as a whole.

    SQLite has one writer at a time. Through aiosqlite every statement and the commit are a
    round trip between the event loop and the connection's thread, so under load a
    transaction held the file lock across several busy loop turns while the other
    connections slept in SQLite's busy handler (up to 100 ms a nap): an ack's insert waited
    behind the worker's writes for seconds. Here one thread with its own connection runs
    every write of the process back to back, urgent ones first, one hop each way.
    Other databases (PostgreSQL) have row locks and a real pool: the same functions run in an
    `AsyncSession` there, concurrently.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        url = engine.url
        self._thread_url: URL | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            self._thread_url = url.set(drivername="sqlite+pysqlite")
        else:
            self._sessions = session_factory(engine)
        self._queue: queue.PriorityQueue[_Job] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def run(self, work: Callable[[Session], T], *, urgent: bool = False) -> T:
        if self._sessions is not None:
            async with self._sessions.begin() as session:
                return await session.run_sync(work)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._start()
        self._queue.put(_Job(URGENT if urgent else NORMAL, next(self._seq), work, loop, future))
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
            self._queue.put(_Job(NORMAL + 1, next(self._seq), None, None, None))
            thread.join(timeout=10)

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
    work: Callable[[Session], Any] | None = field(compare=False)
    loop: asyncio.AbstractEventLoop | None = field(compare=False)
    future: asyncio.Future[Any] | None = field(compare=False)


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


async def update_where(
    writer: Writer, model: type[Any], where: ColumnElement[bool], **values: Any
) -> bool:
    """UPDATE `model`'s rows matching `where` in one write transaction: True if any matched
    (the stores' compare-and-set: a claim still held, a state not yet moved on)."""
    statement = (
        update(model).where(where).values(**values).execution_options(synchronize_session=False)
    )

    def write(session: Session) -> bool:
        return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]

    return await writer.run(write)


async def insert_once(
    writer: Writer,
    row: Any,
    to_model: Callable[[Any], T],
    stored: Callable[[], Awaitable[T | None]],
) -> tuple[T, bool]:
    """Insert `row` before an ack: (it, True) the first time, (the stored one, False) when its
    unique key is taken already (a double tap, a redelivery, another instance first)."""

    def insert(session: Session) -> T:
        session.add(row)
        session.flush()
        return to_model(row)

    try:
        # Urgent: an ack waits on this insert; the worker's bookkeeping can wait.
        return await writer.run(insert, urgent=True), True
    except IntegrityError:
        existing = await stored()
        if existing is None:  # pragma: no cover - the unique key says it exists
            raise
        return existing, False
