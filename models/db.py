"""Engine and session factory. Built per process by the runtime, never at import time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

# Execution option of connections that only read (``conn.execution_options(read_only=True)``).
READ_ONLY = "read_only"

# psycopg server-prepares a statement at its fifth execution, and PostgreSQL may then
# switch to a generic plan, one for any parameters: for "pending jobs of provider $1" that
# is a scan of every job, as the typical provider and status have most of them (the
# dispatcher's probe went from 1 ms to 1.2 s at a million jobs). Never preparing plans
# each statement for its own parameters (~0.1 ms a time). Setting ``plan_cache_mode =
# force_custom_plan`` instead would also re-plan every foreign-key check of every row
# inserted (PostgreSQL's own cached plans): twice the time to insert a million rows.
NEVER_PREPARED: dict[str, Any] = {"prepare_threshold": None}

# A pooled server connection is pinged before use only when it sat idle this long. A worker
# at 150 jobs/s checks a connection out three times per job, each within milliseconds of
# its last use, and SQLAlchemy's ``pool_pre_ping`` would add a round trip (and a server
# wake-up) to every one. A server restarted within this second of a connection's last use
# still fails that connection's next statement, as a restart fails the statements then
# running: SQLAlchemy then invalidates the whole pool, and the jobs go back as after any
# database error (a call not recorded at once, a failed claim or finish by the reconciler).
PING_AFTER_IDLE_SECONDS = 1.0


def make_engine(
    url: str,
    *,
    pool_size: int | None = None,
    ping_after_idle: float = PING_AFTER_IDLE_SECONDS,
    **kwargs: Any,
) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout, foreign keys and write locks.

    A server database's pooled connections are pinged when checked out after
    ``ping_after_idle`` seconds unused (a dead one is replaced, the caller never sees it).

    SQLite transactions begin IMMEDIATE: a deferred transaction that reads and then writes
    fails at once with SQLITE_BUSY when another thread wrote in between, whatever the busy
    timeout; taking the write lock up front makes concurrent worker threads queue instead.
    Connections marked :data:`READ_ONLY` begin deferred, so long reads block no writer.
    """
    sa_url = make_url(url)
    in_memory = sa_url.get_backend_name() == "sqlite" and sa_url.database in (None, "", ":memory:")
    if pool_size is not None and not in_memory:  # one connection per thread: no pool to size
        kwargs.update(pool_size=pool_size, max_overflow=max(4, pool_size // 4))
    if sa_url.get_backend_name() != "sqlite":
        if sa_url.get_backend_name() == "postgresql":
            kwargs["connect_args"] = {**NEVER_PREPARED, **kwargs.get("connect_args", {})}
        engine = create_engine(sa_url, **kwargs)
        _ping_when_idle(engine, ping_after_idle)
        return engine

    engine = create_engine(sa_url, connect_args={"timeout": 60}, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below own BEGIN
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Any) -> None:
        # A reader (an export streaming a million rows) must not hold the write lock: in
        # WAL mode a deferred transaction reads a snapshot while workers keep writing.
        reading = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

    return engine


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """SQLAlchemy's pessimistic disconnect handling, for idle connections only: raising
    DisconnectionError at checkout makes the pool replace the connection and try again."""

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < idle_seconds:
            return  # new, or just used
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"idle connection failed its ping: {exc}") from exc


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One session, one transaction: commit on success, roll back on any error."""
    with sessions() as session, session.begin():
        yield session


class Database:
    """An engine and its session factory for one database URL: the runtime keeps one per
    process, a command opens one for its questions. ``with Database(url) as db:`` disposes
    of it (closes its connections) on the way out."""

    def __init__(self, url: str, *, pool_size: int | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessions = make_sessions(self.engine)
        # The same pool; SQLite keeps its IMMEDIATE transaction (it has no round trips to save).
        self._autocommitting = (
            None
            if self.engine.dialect.name == "sqlite"
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One session, one transaction: commit on success, roll back on any error."""
        with transaction(self.sessions) as session:
            yield session

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection whose every statement commits as it runs, for writes that are one
        statement each (a claim, an attempt row): on a server database no BEGIN and COMMIT,
        two round trips of the three a one-statement transaction costs. SQLite runs them in
        one transaction, committed on success."""
        if self._autocommitting is None:
            with self.engine.begin() as conn:
                yield conn
        else:
            with self._autocommitting.connect() as conn:
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.dispose()
