"""Reusing answers already paid for: a new job whose image (by content) already has an
answer from the same provider with the same options is finished with a copy of it.

An answer is a result row (succeeded or no_result). The copy is a result of the new job
(attempt 0, ``reused_from_id`` naming the copied result) with copies of its readings, so
the new batch's typed rows are queryable like fresh ones and outlive the pruning of the
batch that paid. The job ends with the answer's outcome, ``reused_from_job_id`` naming
the job that paid (the original's, through any chain of copies), no attempt and no bill.

Only answers younger than the maximum age are reused, measured from when the vendor read
the image (a copy keeps that time).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, literal, select, update
from sqlalchemy.orm import aliased

from models.core import Job, Result
from models.readings import CarModelCandidateRow, PlateReadingRow, VehicleLicense
from worker.lifecycle import JobStatus

READING_TABLES: tuple[type[Any], ...] = (VehicleLicense, PlateReadingRow, CarModelCandidateRow)
_KEYS = ("id", "result_id", "job_id")  # reading columns a copy sets itself


def reusable_answers(
    conn: Connection, job_ids: Sequence[int], not_older_than: datetime
) -> list[tuple[int, int]]:
    """(job id, result id) for each of ``job_ids`` whose image has an answer to reuse: the
    latest answer from the job's provider with the job's options, from another batch."""
    new = aliased(Job)
    paid = aliased(Job)
    latest = (
        select(Result.id)
        .join(paid, paid.id == Result.job_id)
        .where(
            Result.image_id == new.image_id,
            Result.provider == new.provider,
            Result.created_at >= not_older_than,
            paid.options_key == new.options_key,
            paid.batch_id != new.batch_id,
        )
        .order_by(Result.created_at.desc(), Result.id.desc())
        .limit(1)
        .correlate(new)
        .scalar_subquery()
    )
    rows = conn.execute(select(new.id, latest).where(new.id.in_(job_ids)))
    return [(job_id, result_id) for job_id, result_id in rows if result_id is not None]


def reuse_answers(
    conn: Connection, job_ids: Sequence[int], now: datetime, max_age: timedelta
) -> int:
    """Finish every job of ``job_ids`` that has an answer to reuse; how many did."""
    pairs = reusable_answers(conn, job_ids, now - max_age)
    if not pairs:
        return 0
    source = {result_id for _, result_id in pairs}
    origin = dict(
        conn.execute(
            select(Result.id, func.coalesce(Job.reused_from_job_id, Job.id))
            .join(Job, Job.id == Result.job_id)
            .where(Result.id.in_(source))
        ).all()
    )
    outcome = dict(
        conn.execute(select(Result.id, Result.outcome).where(Result.id.in_(source))).all()
    )
    conn.execute(
        update(Job).where(Job.id == bindparam("b_id")),
        [
            {
                "b_id": job_id,
                "status": JobStatus(outcome[result_id]),
                "reused_from_job_id": origin[result_id],
                "finished_at": now,
                "updated_at": now,
            }
            for job_id, result_id in pairs
        ],
    )
    _copy_results(conn, pairs)
    _copy_readings(conn, [job_id for job_id, _ in pairs])
    return len(pairs)


def reuse_batch(
    conn: Connection, batch_id: int, now: datetime, max_age: timedelta, chunk: int = 10_000
) -> int:
    """:func:`reuse_answers` for every pending job of a batch, a chunk of job ids at a time;
    how many reused. Providers with no answer young enough anywhere are skipped without
    looking at their jobs (a reprocess with a provider not used yet for these images)."""
    cutoff = now - max_age
    providers = list(conn.scalars(select(Job.provider).where(Job.batch_id == batch_id).distinct()))
    answering = [
        p
        for p in providers
        if conn.scalar(
            select(Result.id).where(Result.provider == p, Result.created_at >= cutoff).limit(1)
        )
        is not None
    ]
    reused, last = 0, 0
    while answering:
        ids = list(
            conn.scalars(
                select(Job.id)
                .where(
                    Job.batch_id == batch_id,
                    Job.status == JobStatus.PENDING,
                    Job.provider.in_(answering),
                    Job.id > last,
                )
                .order_by(Job.id)
                .limit(chunk)
            )
        )
        if not ids:
            break
        reused += reuse_answers(conn, ids, now, max_age)
        last = ids[-1]
    return reused


def _copy_results(conn: Connection, pairs: Sequence[tuple[int, int]]) -> None:
    copied = select(
        bindparam("b_job"),
        literal(0),
        Result.image_id,
        Result.provider,
        Result.outcome,
        Result.raw,
        Result.warnings,
        Result.created_at,
        Result.id,
    ).where(Result.id == bindparam("b_result"))
    columns = ["job_id", "attempt", "image_id", "provider", "outcome", "raw", "warnings"]
    stmt = insert(Result).from_select([*columns, "created_at", "reused_from_id"], copied)
    conn.execute(stmt, [{"b_job": job_id, "b_result": result_id} for job_id, result_id in pairs])


def _copy_readings(conn: Connection, job_ids: Sequence[int]) -> None:
    """Each copied result's readings, copied with the new result's and job's ids."""
    for table in READING_TABLES:
        columns = [c.name for c in table.__table__.columns if c.name not in _KEYS]
        copy = aliased(Result)
        rows = (
            select(copy.id, copy.job_id, *(table.__table__.c[name] for name in columns))
            .join(table, table.result_id == copy.reused_from_id)
            .where(copy.job_id.in_(job_ids), copy.attempt == 0)
        )
        conn.execute(insert(table).from_select(["result_id", "job_id", *columns], rows))
