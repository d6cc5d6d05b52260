"""Exporting results as CSV or JSON Lines: one row per submitted file x provider.

Streamed in constant memory (:mod:`models.export`). CSV opens correctly in Excel and WPS:
UTF-8 (with a byte-order mark by option, which is what makes Excel read it as UTF-8), a
header row, and every text value that a spreadsheet would run as a formula (starting with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return) made inert with a leading ``'``.
JSON Lines is one object per line, non-ASCII text kept as it is.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import IO, Literal

from models import export as rows_of
from models.db import Database
from models.queries import image_ids
from worker.service.batches import get_batch

Format = Literal["csv", "jsonl"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_CHARS = "".join(FORMULA_STARTS)


def inert(value: object) -> object:
    """A CSV cell a spreadsheet shows as text, never runs (OWASP's CSV-injection advice);
    numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def rows(
    db: Database, *, batch_id: int | None = None, sql: str | None = None
) -> Iterator[tuple[object, ...]]:
    """The export rows (:data:`COLUMNS`) of a batch, or of the images a read-only query
    names."""
    if batch_id is not None:
        with db.transaction() as session:
            get_batch(session, batch_id)
        return rows_of.batch_rows(db.engine, batch_id)
    assert sql is not None
    return rows_of.image_rows(db.engine, image_ids(db.engine, sql))


COLUMNS = rows_of.COLUMNS


def write(
    out: IO[str], found: Iterator[tuple[object, ...]], fmt: Format, *, bom: bool = False
) -> int:
    """Write ``found`` to ``out`` as ``fmt``; how many rows."""
    n = 0
    if fmt == "csv":
        if bom:
            out.write("\ufeff")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for row in found:
            # inert() inlined: this runs once per cell of a million rows.
            writer.writerow(
                ["'" + v if type(v) is str and v and v[0] in FORMULA_CHARS else v for v in row]
            )
            n += 1
        return n
    for row in found:
        out.write(json.dumps(dict(zip(COLUMNS, row, strict=True)), ensure_ascii=False, default=str))
        out.write("\n")
        n += 1
    return n
