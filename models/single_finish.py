"""Finishing one job in one statement on PostgreSQL: its transition, its call's attempt
row, its result and the result's readings, as data-modifying CTEs of a single statement.

A transaction of those four writes costs six round trips (BEGIN, four statements,
COMMIT); one statement under autocommit costs one, and a statement is atomic on its own.
At vendor rates every message carries one job, so this is what a worker does per job.
:func:`models.jobs.finish` decides when it applies; :func:`models.jobs.finish_many` is
the general path (and SQLite's, which has no data-modifying CTEs).

The lease is checked as :func:`~models.jobs.finish_many` checks it: the job's UPDATE
matches only while it is running under the claim's owner, and the result and readings
are inserted from the rows that UPDATE returned, so a lost lease writes only the call.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Connection, bindparam, column, func, insert, select, true, update
from sqlalchemy.dialects.postgresql import JSONB

from models.core import Attempt, Job, Result
from worker.lifecycle import JobStatus

_RESULT_COLUMNS = ("attempt", "image_id", "provider", "outcome", "raw", "warnings", "created_at")
_READING_KEYS = ("job_id", "image_id", "provider")  # besides result_id, bound once


def finish_alone(
    conn: Connection,
    *,
    job_id: int,
    owner: str,
    job: Mapping[str, Any],
    attempt: tuple[int, Mapping[str, Any]] | None,
    result: Mapping[str, Any] | None,
    readings: tuple[type[Any], Sequence[Mapping[str, Any]]] | None,
) -> bool:
    """Write one job's finish in one statement; whether its lease still held (if not,
    only the attempt row was written).

    ``job``: the job's new column values. ``attempt``: the call's row id and its columns
    (the row :func:`~models.jobs.start_attempt` wrote), or None when no call was made.
    ``result``: the result's columns but ``job_id``, or None. ``readings``: the reading
    table and its rows' columns but the keys (result, job, image, provider), or None.
    """
    table: Any = readings[0] if readings else None
    statement = _statement(
        frozenset(job),
        frozenset(attempt[1]) if attempt else None,
        result is not None,
        table,
    )
    params: dict[str, Any] = {"b_id": job_id, "b_owner": owner}
    params.update({f"j_{k}": v for k, v in job.items()})
    if attempt is not None:
        params["a_id"] = attempt[0]
        params.update({f"a_{k}": v for k, v in attempt[1].items()})
    if result is not None:
        params.update({f"r_{k}": result[k] for k in _RESULT_COLUMNS})
    if readings is not None:
        params["rd_rows"] = [_jsonable(row) for row in readings[1]]
    return conn.execute(statement, params).first() is not None


def lease_held() -> tuple[Any, ...]:
    """The WHERE of a job's UPDATE that matches only while the claim's lease holds: job
    ``b_id`` running under owner ``b_owner``."""
    return (
        Job.id == bindparam("b_id"),
        Job.status == JobStatus.RUNNING,
        Job.lease_owner == bindparam("b_owner"),
    )


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    # The rows travel as one JSON document; dates as ISO text, which PostgreSQL casts back.
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in row.items()}


@functools.cache
def _statement(
    job: frozenset[str],
    attempt: frozenset[str] | None,
    answered: bool,
    readings: Any,  # the reading table's model class, or None
) -> Any:
    """The statement for one shape of finish, built once: construction and compilation
    are per-message CPU. Its one row is the job's id when the lease held."""
    jobs = Job.__table__.c
    held = (
        update(Job)
        .where(*lease_held())
        .values({k: bindparam(f"j_{k}", type_=jobs[k].type) for k in sorted(job)})
        .returning(Job.id)
        .cte("held")
    )
    outer = select(held.c.id)
    if attempt is not None:
        attempts = Attempt.__table__.c
        values = {k: bindparam(f"a_{k}", type_=attempts[k].type) for k in sorted(attempt)}
        written = (
            update(Attempt)
            .where(Attempt.id == bindparam("a_id"))
            .values(values)
            .returning(Attempt.id)
            .cte("called")
        )
        outer = outer.add_cte(written)  # not read, but run: PostgreSQL runs every CTE that writes
    if answered:
        results = Result.__table__.c
        row = [held.c.id, *(bindparam(f"r_{k}", type_=results[k].type) for k in _RESULT_COLUMNS)]
        stored = (
            insert(Result)
            .from_select(["job_id", *_RESULT_COLUMNS], select(*row))
            .returning(Result.id)
            .cte("stored")
        )
        outer = outer.add_cte(stored)
        if readings is not None:
            outer = outer.add_cte(_readings_insert(readings, stored))
    return outer


def _readings_insert(table: type[Any], stored: Any) -> Any:
    """INSERT of the readings, from the JSON array ``rd_rows`` joined to the result row."""
    columns = table.__table__.c
    fields = [c.name for c in columns if c.name not in ("id", "result_id", *_READING_KEYS)]
    rows = (
        func.jsonb_to_recordset(bindparam("rd_rows", type_=JSONB))
        .table_valued(*(column(name, columns[name].type) for name in fields))
        .render_derived(name="rd", with_types=True)
    )
    keys = [bindparam(f"r_{k}", type_=columns[k].type) for k in ("image_id", "provider")]
    job = bindparam("b_id", type_=columns.job_id.type)
    selected = select(stored.c.id, job, *keys, *(rows.c[name] for name in fields))
    return (
        insert(table)
        .from_select(
            ["result_id", *_READING_KEYS, *fields], selected.select_from(stored).join(rows, true())
        )
        .returning(columns.id)
        .cte("readings")
    )
