"""A person's SQL question, run read-only: the images it names, for reprocess and export.

The query must be one SELECT (``WITH ... SELECT`` included) returning an ``image_id``
column; it runs in a read-only transaction (PostgreSQL) or on a connection that refuses
writes (SQLite's ``query_only``), and its rows are streamed (a server-side cursor on
PostgreSQL), so a million ids cost no more memory than a thousand. What the database
says about a query it refused is passed on as it said it, in one line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlparse
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from worker.errors import BadQuery

FETCH = 10_000  # rows per round trip while streaming


def single_select(sql: str) -> str:
    """``sql`` as one statement (a trailing ``;`` dropped), or BadQuery saying why not."""
    statements = [s for s in sqlparse.parse(sql) if s.token_first(skip_cm=True) is not None]
    if len(statements) != 1:
        raise BadQuery(f"the query must be one SELECT statement, not {len(statements)}")
    kind = statements[0].get_type()
    if kind != "SELECT":
        raise BadQuery(f"only a SELECT (or WITH ... SELECT) is run, not {kind or 'this'}")
    return str(statements[0]).strip().rstrip(";").strip()


def first_line(exc: BaseException) -> str:
    """The database's own message for a failed statement (a driver error, or SQLAlchemy's
    wrapper of one), first line only."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


def _run(raw: Any, statement: str) -> None:
    cursor = raw.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


@contextmanager
def _read_only_cursor(engine: Engine) -> Iterator[Any]:
    """A DBAPI cursor that may read only: PostgreSQL's READ ONLY transaction (a named,
    server-side cursor), SQLite's ``query_only``; rolled back and reset afterwards."""
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "postgresql":
            _run(raw, "SET TRANSACTION READ ONLY")
            driver = raw.driver_connection
            assert driver is not None
            cursor = driver.cursor(name="vrec_query")  # server-side: rows come as fetched
        else:
            _run(raw, "PRAGMA query_only = ON")
            cursor = raw.cursor()
        try:
            yield cursor
        finally:
            # The rollback ends the read-only transaction (a server-side cursor with it,
            # also after a failed statement); closing the cursor then has nothing to say.
            raw.rollback()
            with contextlib.suppress(Exception):
                cursor.close()
    finally:
        try:
            if engine.dialect.name == "sqlite":
                _run(raw, "PRAGMA query_only = OFF")
        finally:
            raw.close()


def image_ids(engine: Engine, sql: str) -> Iterator[int]:
    """The ``image_id`` of every row ``sql`` returns, streamed, in the query's order.

    Raises BadQuery before the first id for a query that is not one SELECT, that the
    database refuses, or that has no ``image_id`` column (its columns are named).
    """
    statement = single_select(sql)
    with _read_only_cursor(engine) as cursor:
        try:
            cursor.execute(statement)
            first = cursor.fetchmany(FETCH)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise BadQuery(first_line(exc)) from exc
        columns = [str(d[0]).lower() for d in cursor.description or ()]
        if "image_id" not in columns:
            shown = ", ".join(columns) or "none"
            raise BadQuery(f"the query returns no image_id column (its columns: {shown})")
        at = columns.index("image_id")
        rows = first
        while rows:
            for row in rows:
                if row[at] is not None:
                    yield int(row[at])
            rows = cursor.fetchmany(FETCH)
