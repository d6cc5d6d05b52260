"""Claiming a job with a lease and finishing it in one transaction.

Every step is idempotent by job id: a claim only succeeds on a job that is queued (or
due and pending) and whose provider's circuit is closed, and finishing only writes when
this worker still holds the lease, so a message delivered twice never produces two
results.

These run for every Celery message in every worker thread, so they are plain Core
statements, a fixed number per message whatever its job count: one UPDATE ... RETURNING to
claim; to finish, one locking SELECT, one executemany UPDATE and one INSERT per table. The
ORM's unit of work cost more CPU than the vendor call around them, and five statements
per job were still the largest share of a worker's time against a fast vendor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, exists, insert, or_, select, update
from sqlalchemy.orm import Session

from models.core import Attempt, Image, Job, JobStatus, ProviderState, Result
from models.readings import CarModelCandidateRow, PlateReadingRow, VehicleLicense
from worker.config import Settings
from worker.errors import JobError, Outcome
from worker.outcome import JobRun
from worker.policy import retry_delay
from worker.providers.base import CarModelCandidate, PlateReading, VehicleLicenseReading

_READING_TABLES: dict[type, type[Any]] = {
    VehicleLicenseReading: VehicleLicense,
    PlateReading: PlateReadingRow,
    CarModelCandidate: CarModelCandidateRow,
}
_NO_ERROR = {"last_error_category": None, "last_error_code": None, "last_error_message": None}


@dataclass(frozen=True)
class ClaimedJob:
    job_id: int
    batch_id: int
    image_id: int
    provider: str
    options: dict[str, str]
    source_uri: str
    sha256: str | None
    owner: str


def _circuit_open(now: datetime) -> Any:
    """SQL: the job's provider has an open circuit at ``now``."""
    return exists().where(
        ProviderState.provider == Job.provider, ProviderState.circuit_open_until > now
    )


def claim_many(
    session: Session, job_ids: Sequence[int], *, owner: str, now: datetime, lease_seconds: float
) -> list[ClaimedJob]:
    """Take the lease on each of ``job_ids`` that is ours to run, in one statement.

    Skipped: jobs done, running elsewhere or not due yet, and jobs whose provider's
    circuit is open; those go straight back to pending rather than waiting for the
    reconciler's queued timeout.
    """
    if not job_ids:
        return []
    # SQLite's RETURNING can't name another table, but it can hold subqueries.
    uri = select(Image.source_uri).where(Image.id == Job.image_id).scalar_subquery()
    sha = select(Image.sha256).where(Image.id == Job.image_id).scalar_subquery()
    conn = session.connection()
    rows = conn.execute(
        update(Job)
        .where(
            Job.id.in_(job_ids),
            Job.status.in_([JobStatus.QUEUED, JobStatus.PENDING]),
            or_(Job.not_before.is_(None), Job.not_before <= now),
            ~_circuit_open(now),
        )
        .values(
            status=JobStatus.RUNNING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            updated_at=now,
        )
        .returning(Job.id, Job.batch_id, Job.image_id, Job.provider, Job.options, uri, sha)
    ).all()
    if len(rows) < len(job_ids):
        conn.execute(
            update(Job)
            .where(Job.id.in_(job_ids), Job.status == JobStatus.QUEUED, _circuit_open(now))
            .values(status=JobStatus.PENDING, queued_at=None, updated_at=now)
        )
    order = {job_id: i for i, job_id in enumerate(job_ids)}
    claimed = [
        ClaimedJob(
            job_id=job_id,
            batch_id=batch_id,
            image_id=image_id,
            provider=provider,
            options=dict(options or {}),
            source_uri=source_uri,
            sha256=sha256,
            owner=owner,
        )
        for job_id, batch_id, image_id, provider, options, source_uri, sha256 in rows
    ]
    return sorted(claimed, key=lambda c: order[c.job_id])


def claim(
    session: Session, job_id: int, *, owner: str, now: datetime, lease_seconds: float
) -> ClaimedJob | None:
    """Take the lease on ``job_id``; None if it is not ours to run (see :func:`claim_many`)."""
    claimed = claim_many(session, [job_id], owner=owner, now=now, lease_seconds=lease_seconds)
    return claimed[0] if claimed else None


def finish(
    session: Session,
    claimed: ClaimedJob,
    run: JobRun,
    *,
    settings: Settings,
    now: datetime,
    worker: str | None = None,
) -> str | None:
    """Write attempt, result, readings and the job's next status; None if the lease was lost."""
    return finish_many(session, [(claimed, run)], settings=settings, now=now, worker=worker)[0]


def finish_many(
    session: Session,
    done: Sequence[tuple[ClaimedJob, JobRun]],
    *,
    settings: Settings,
    now: datetime,
    worker: str | None = None,
) -> list[str | None]:
    """:func:`finish` for a chunk of jobs: each job's next status, None where the lease was
    lost. One statement per table for the whole chunk, not per job (per-statement CPU is
    what limits a worker when the vendor is fast)."""
    if not done:
        return []
    conn = session.connection()
    # Locked until commit, so the reconciler cannot take a lease back between this read and
    # the updates below (SQLite: the transaction already holds the write lock).
    held = {
        job_id: (attempts, retries, owner)
        for job_id, attempts, retries, owner in conn.execute(
            select(Job.id, Job.attempts, Job.retries, Job.lease_owner)
            .where(Job.id.in_([c.job_id for c, _ in done]), Job.status == JobStatus.RUNNING)
            .order_by(Job.id)
            .with_for_update()
        )
    }
    mine: list[tuple[ClaimedJob, JobRun, int]] = []
    statuses: list[str | None] = []
    updates: dict[frozenset[str], list[dict[str, Any]]] = {}
    for claimed, run in done:
        attempts, retries, owner = held.get(claimed.job_id, (0, 0, None))
        if owner != claimed.owner:
            statuses.append(None)
            continue
        attempts += run.call is not None
        values = _next_state(session, claimed, run, attempts, retries, settings, now)
        updates.setdefault(frozenset(values), []).append({"b_id": claimed.job_id, **values})
        mine.append((claimed, run, attempts))
        statuses.append(str(values["status"]))
    for rows in updates.values():  # one executemany per shape; usually one shape per chunk
        conn.execute(_UPDATE_JOB, rows)
    _insert_attempts(conn, mine, worker)
    _insert_results(conn, [(c, r) for c, r, _ in mine if r.answer is not None], now)
    for claimed, run, _ in mine:
        if run.source is not None and claimed.sha256 is None:
            _record_source(session, claimed.image_id, run)
    return statuses


_UPDATE_JOB = update(Job).where(Job.id == bindparam("b_id"))


def _insert_attempts(
    conn: Connection, mine: Sequence[tuple[ClaimedJob, JobRun, int]], worker: str | None
) -> None:
    rows = [_attempt_row(c, r, n, worker) for c, r, n in mine if r.call is not None]
    if rows:
        conn.execute(insert(Attempt), rows)


def _insert_results(
    conn: Connection, answered: Sequence[tuple[ClaimedJob, JobRun]], now: datetime
) -> None:
    """Results, then every reading with its result's id."""
    if not answered:
        return
    rows = []
    for claimed, run in answered:
        assert run.answer is not None
        rows.append(
            {
                "job_id": claimed.job_id,
                "image_id": claimed.image_id,
                "provider": claimed.provider,
                "outcome": run.answer.outcome.value,
                "raw": run.answer.raw,
                "warnings": list(run.answer.warnings),
                "created_at": now,
            }
        )
    ids = conn.execute(
        insert(Result).returning(Result.id, sort_by_parameter_order=True), rows
    ).scalars()
    by_table: dict[type[Any], list[dict[str, Any]]] = {}
    for (claimed, run), result_id in zip(answered, ids, strict=True):
        assert run.answer is not None
        keys = {
            "result_id": result_id,
            "job_id": claimed.job_id,
            "image_id": claimed.image_id,
            "provider": claimed.provider,
        }
        for reading in run.answer.readings:
            table = _READING_TABLES[type(reading)]
            by_table.setdefault(table, []).append({**asdict(reading), **keys})
    for table, readings in by_table.items():
        conn.execute(insert(table), readings)


def _next_state(
    session: Session,
    claimed: ClaimedJob,
    run: JobRun,
    attempts: int,
    retries: int,
    settings: Settings,
    now: datetime,
) -> dict[str, Any]:
    """The job's columns after ``run``: terminal, retry later, or back to pending."""
    free = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
    done = {**free, "finished_at": now, "not_before": None}
    later = {**free, "status": JobStatus.PENDING, "queued_at": None}
    base = {"attempts": attempts, "retries": retries}
    if run.answer is not None:
        return {**base, **done, **_NO_ERROR, "status": JobStatus(run.answer.outcome.value)}
    if run.error is None:  # the limiter had no slot soon enough: no call was made
        return {**base, **later, "not_before": now + timedelta(seconds=run.give_back or 0.0)}
    error = run.error
    failed = {
        "last_error_category": error.category,
        "last_error_code": error.vendor_code,
        "last_error_message": error.message[:2000],  # provider and code have columns
    }
    if error.outcome is Outcome.INVALID_IMAGE:
        return {**base, **done, **failed, "status": JobStatus.INVALID_IMAGE}
    if error.outcome is Outcome.PROVIDER_UNAVAILABLE:
        open_circuit(session, claimed.provider, error, now, settings.circuit_cooldown_seconds)
        return {**base, **later, **failed, "not_before": None}
    retries += 1
    delay = retry_delay(error, retries, settings)
    base["retries"] = retries
    if delay is None:
        return {**base, **done, **failed, "status": JobStatus.FAILED}
    return {**base, **later, **failed, "not_before": now + timedelta(seconds=delay)}


def open_circuit(
    session: Session, provider: str, error: JobError, now: datetime, cooldown: float
) -> None:
    state = session.get(ProviderState, provider, with_for_update=True)
    if state is None:
        state = ProviderState(provider=provider)
        session.add(state)
    if state.circuit_open_until is None or state.circuit_open_until <= now:
        state.opened_at = now
    state.circuit_open_until = now + timedelta(seconds=cooldown)
    state.error_code = error.vendor_code
    state.error_message = error.message
    session.flush()


def _attempt_row(
    claimed: ClaimedJob, run: JobRun, number: int, worker: str | None
) -> dict[str, Any]:
    assert run.call is not None
    call = run.call
    return {
        "job_id": claimed.job_id,
        "number": number,
        "provider": claimed.provider,
        "started_at": call.started_at,
        "duration_ms": call.duration_ms,
        "http_status": call.http_status,
        "vendor_code": call.vendor_code,
        "vendor_request_id": call.request_id,
        "outcome": (run.outcome or Outcome.TRANSIENT).value,
        "error_message": run.error.message if run.error else None,
        "billed": call.billed,
        "worker": worker,
    }


def _record_source(session: Session, image_id: int, run: JobRun) -> None:
    """Fill in what registration could not know (URL images) without clobbering a sibling
    image that already has this content."""
    assert run.source is not None
    src = run.source
    taken = session.scalar(select(Image.id).where(Image.sha256 == src.sha256))
    session.execute(
        update(Image)
        .where(Image.id == image_id, Image.sha256.is_(None))
        .values(
            sha256=src.sha256 if taken is None else None,
            bytes=src.size,
            width=src.width,
            height=src.height,
            format=src.format,
        )
    )
