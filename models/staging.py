"""Streaming many ids into the database for one set-based statement.

A million image ids bound as parameters cost more in the driver (quoting, placeholder
parsing) than the statements that use them. Instead they are written to a temporary
table of this transaction: COPY on PostgreSQL, executemany on SQLite (in-process, fast),
in chunks, so neither side holds them all; statements then join it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} (id {kind} NOT NULL)")
    try:
        it = iter(ids)
        if conn.dialect.name == "postgresql":
            raw = conn.connection.driver_connection
            assert raw is not None
            with raw.cursor().copy(f"COPY {name} (id) FROM STDIN") as copy:
                for value in it:
                    copy.write_row((value,))
        else:
            while chunk := [(value,) for value in islice(it, CHUNK)]:
                conn.exec_driver_sql(f"INSERT INTO {name} (id) VALUES (?)", chunk)
        conn.exec_driver_sql(f"ANALYZE {name}")  # the planner must know it holds a million
        yield table(name, column("id"))
    finally:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
