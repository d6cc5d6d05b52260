"""Attempt rows written from the worker's event loop on PostgreSQL, without a thread hop.

The journal writes a row as each call's limiter slot comes due, on the loop that then
sends the call, and the write's time counts against the slot's lateness budget. Through
SQLAlchemy that write is a hop to an executor thread and back, two thread switches on top
of the round trip, which under load took 3 ms typically and 10-30 ms at the tail;
psycopg's async connection does the round trip on the loop itself. One connection in
autocommit per concurrent write (up to :data:`CONNECTIONS`, opened as needed and kept)
serves the whole process; one that fails is closed, and the next write opens another.
The rows are those :func:`models.jobs.start_attempt` writes (a test holds them to it);
SQLite keeps that path.

psycopg's errors come out as they are; the journal translates them
(:class:`~worker.errors.CallNotRecorded`), as it does SQLAlchemy's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from models.core import Attempt

# The columns of :func:`models.jobs.in_flight_row`, in the order the INSERT binds them.
_COLUMNS = (
    "job_id",
    "number",
    "provider",
    "started_at",
    "duration_ms",
    "outcome",
    "billed",
    "worker",
)
_INSERT = (
    f"INSERT INTO {Attempt.__tablename__} ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_COLUMNS))}) RETURNING id"
)
_DELETE = f"DELETE FROM {Attempt.__tablename__} WHERE id = %s"
APPLICATION_NAME = "vrec attempts"  # what pg_stat_activity shows for the connections
# Writes at once: a chunk's calls come due together at high rates, and one connection
# would take their rows in turn.
CONNECTIONS = 4


def conninfo(database_url: str) -> str:
    """psycopg's connection string for a SQLAlchemy PostgreSQL URL."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class LoopAttempts:
    """Writes and withdraws attempt rows on the running event loop (PostgreSQL only).

    Use it from one loop; connections open on first use."""

    def __init__(self, database_url: str, *, connections: int = CONNECTIONS) -> None:
        self._conninfo = conninfo(database_url)
        self._connections = connections
        self._idle: list[psycopg.AsyncConnection[tuple[int]]] = []
        self._slots: asyncio.Semaphore | None = None

    async def start(self, row: Mapping[str, Any]) -> int:
        """Write down (committed) the call about to be made (``row``: its
        :func:`models.jobs.in_flight_row`); the row's id."""
        fetched = await self._execute(_INSERT, tuple(row[c] for c in _COLUMNS))
        assert fetched is not None
        return fetched[0]

    async def withdraw(self, attempt_id: int) -> None:
        """Remove (committed) the row of a call that will not be made."""
        await self._execute(_DELETE, (attempt_id,))

    async def _execute(self, sql: str, params: tuple[object, ...]) -> tuple[int] | None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._connections)
        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            try:
                if conn is None or conn.closed:
                    conn = await psycopg.AsyncConnection.connect(
                        self._conninfo, autocommit=True, application_name=APPLICATION_NAME
                    )
                cursor = await conn.execute(sql, params)
                fetched = await cursor.fetchone() if cursor.description else None
            except psycopg.Error:
                if conn is not None:  # a broken connection would fail every later write
                    await _close(conn)
                raise
            self._idle.append(conn)
            return fetched

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await _close(conn)


async def _close(conn: psycopg.AsyncConnection[tuple[int]]) -> None:
    with contextlib.suppress(psycopg.Error):  # closing a broken connection
        await conn.close()
