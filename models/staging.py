"""Streaming many rows into the database for set-based statements.

A million ids (or paths) bound as parameters cost more in the driver (quoting, placeholder
parsing) than the statements that use them. Instead they are written to a temporary
table of this transaction: COPY on PostgreSQL, executemany on SQLite (in-process, fast),
in chunks, so neither side holds them all; statements then join it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any

from sqlalchemy import Connection, column, table

CHUNK = 10_000


@contextmanager
def staged_ids(
    conn: Connection, ids: Iterable[int], name: str = "vrec_staged_ids"
) -> Iterator[Any]:
    """A temporary one-column table (``id``) holding ``ids``, for the block; dropped after."""
    kind = "BIGINT" if conn.dialect.name == "postgresql" else "INTEGER"
    with staged_rows(conn, name, [("id", f"{kind} NOT NULL")], ((v,) for v in ids)) as staged:
        yield staged


@contextmanager
def staged_rows(
    conn: Connection,
    name: str,
    columns: Sequence[tuple[str, str]],
    rows: Iterable[tuple[Any, ...]],
    *,
    index: Sequence[str] = (),
) -> Iterator[Any]:
    """A temporary table ``name`` of ``columns`` (name, SQL type) holding ``rows``, indexed
    on ``index`` once loaded, for the block; dropped after."""
    names = ", ".join(n for n, _ in columns)
    defined = ", ".join(f"{n} {kind}" for n, kind in columns)
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} ({defined})")
    try:
        it = iter(rows)
        marks = ", ".join("?" for _ in columns)
        # Rows are taken a chunk at a time before each statement, so an error of the
        # iterator (a folder that vanished mid-walk) never aborts a COPY half-way, which
        # on PostgreSQL would abort the whole transaction.
        while chunk := list(islice(it, CHUNK)):
            if conn.dialect.name == "postgresql":
                raw = conn.connection.driver_connection
                assert raw is not None
                with raw.cursor().copy(f"COPY {name} ({names}) FROM STDIN") as copy:
                    for row in chunk:
                        copy.write_row(row)
            else:
                conn.exec_driver_sql(f"INSERT INTO {name} ({names}) VALUES ({marks})", chunk)
        if index:
            conn.exec_driver_sql(f"CREATE INDEX ix_{name} ON {name} ({', '.join(index)})")
        conn.exec_driver_sql(f"ANALYZE {name}")  # the planner must know it holds a million
        yield table(name, *(column(n) for n, _ in columns))
    finally:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
