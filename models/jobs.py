"""Claiming a job with a lease and finishing it atomically (one transaction or one statement).

Every step is idempotent by job id: a claim only succeeds on a job that is queued (or
due and pending) and whose provider's circuit is closed, and finishing only writes when
this worker still holds the lease, so a message delivered twice never produces two
results. Finishing writes what :mod:`worker.policy` decided (a :class:`Transition` per
job); nothing here decides a job's next state.

Every vendor call is written down before it is sent (:func:`start_attempt`, outcome
``in_flight``) and completed by :func:`finish`, even when the lease was lost
meanwhile: the attempts table counts the calls the vendor saw, whatever was killed. A row
whose call was then not made is removed (:func:`withdraw_attempt`, or with its job's
outcome), since the vendor never saw it.

These run for every Celery message in every worker thread, so they are plain Core
statements, a fixed number per message whatever its job count: one UPDATE ... RETURNING to
claim; to finish, one locking SELECT, one executemany UPDATE and one INSERT per table
(:func:`finish_many`), or for a message of one job on PostgreSQL, one statement
(:func:`finish`, :mod:`models.single_finish`). The ORM's unit of work cost more CPU than
the vendor call around them, and the finish's round trips were still the largest share
of a worker's time against a fast vendor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    Integer,
    bindparam,
    delete,
    exists,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from models import single_finish
from models.core import Attempt, Image, Item, Job, ProviderState, Result
from models.db import Database
from models.readings import CarModelCandidateRow, PlateReadingRow, VehicleLicense
from worker.errors import Outcome
from worker.jobrun import JobRun
from worker.lifecycle import IN_FLIGHT, CircuitOpening, JobStatus, Transition
from worker.providers.base import CarModelCandidate, PlateReading, VehicleLicenseReading

_READING_TABLES: dict[type, type[Any]] = {
    VehicleLicenseReading: VehicleLicense,
    PlateReading: PlateReadingRow,
    CarModelCandidate: CarModelCandidateRow,
}


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
    attempts: int  # vendor calls made before this claim
    retries: int  # retryable failures before this claim


def _circuit_open(now: Any) -> Any:
    """SQL: the job's provider has an open circuit at ``now``."""
    return exists().where(
        ProviderState.provider == Job.provider, ProviderState.circuit_open_until > now
    )


def _claim_statements() -> tuple[Any, Any]:
    """The claim's two statements, built once: constructing them (subqueries, coercions,
    cache keys) cost more CPU per message than executing them. Parameters: ``b_ids``
    (expanding), ``b_now``, ``b_owner``, ``b_expires``."""
    # SQLite's RETURNING can't name another table, but it can hold subqueries.
    # The bytes are read from the batch's first item of the image (files with the same
    # content are one image; any of them will do). RETURNING renders the updated table's
    # columns unqualified, where "batch_id" would name the subquery's own: qualify them.
    job_batch = literal_column("jobs.batch_id", Integer)
    job_image = literal_column("jobs.image_id", Integer)
    uri = (
        select(Item.uri)
        .where(Item.batch_id == job_batch, Item.image_id == job_image)
        .order_by(Item.id)
        .limit(1)
        .scalar_subquery()
        .label("source_uri")
    )
    sha = select(Image.sha256).where(Image.id == job_image).scalar_subquery().label("sha256")
    ids: BindParameter[Any] = bindparam("b_ids", expanding=True)
    now: BindParameter[Any] = bindparam("b_now")
    claim = (
        update(Job)
        .where(
            Job.id.in_(ids),
            Job.status.in_([JobStatus.QUEUED, JobStatus.PENDING]),
            or_(Job.not_before.is_(None), Job.not_before <= now),
            ~_circuit_open(now),
        )
        .values(
            status=JobStatus.RUNNING,
            lease_owner=bindparam("b_owner"),
            lease_expires_at=bindparam("b_expires"),
            updated_at=now,
        )
        .returning(
            Job.id,
            Job.batch_id,
            Job.image_id,
            Job.provider,
            Job.options,
            uri,
            sha,
            Job.attempts,
            Job.retries,
        )
    )
    back = (
        update(Job)
        .where(Job.id.in_(ids), Job.status == JobStatus.QUEUED, _circuit_open(now))
        .values(status=JobStatus.PENDING, queued_at=None, updated_at=now)
    )
    return claim, back


_CLAIM, _UNQUEUE_OPEN = _claim_statements()


def claim_many(
    conn: Connection, job_ids: Sequence[int], *, owner: str, now: datetime, lease_seconds: float
) -> list[ClaimedJob]:
    """Take the lease on each of ``job_ids`` that is ours to run, in one statement.

    Skipped: jobs done, running elsewhere or not due yet, and jobs whose provider's
    circuit is open; those go straight back to pending rather than waiting for the
    reconciler's queued timeout. The two statements need not commit together (each is
    whole on its own), so ``conn`` may autocommit (:meth:`models.db.Database.autocommit`).
    """
    if not job_ids:
        return []
    params = {
        "b_ids": list(job_ids),
        "b_now": now,
        "b_owner": owner,
        "b_expires": now + timedelta(seconds=lease_seconds),
    }
    rows = conn.execute(_CLAIM, params).all()
    if len(rows) < len(job_ids):
        conn.execute(_UNQUEUE_OPEN, {"b_ids": list(job_ids), "b_now": now})
    order = {job_id: i for i, job_id in enumerate(job_ids)}
    claimed = [
        ClaimedJob(
            job_id=row.id,
            batch_id=row.batch_id,
            image_id=row.image_id,
            provider=row.provider,
            options=dict(row.options or {}),
            source_uri=row.source_uri,
            sha256=row.sha256,
            owner=owner,
            attempts=row.attempts,
            retries=row.retries,
        )
        for row in rows
    ]
    return sorted(claimed, key=lambda c: order[c.job_id])


def start_attempt(
    conn: Connection, claimed: ClaimedJob, *, started_at: datetime, worker: str | None
) -> int:
    """Write down the call ``claimed`` is about to make (outcome ``in_flight``, billing
    unknown, numbered the job's next call); its id. It must be committed (``conn``
    autocommitting, or the caller's commit) before the call is sent."""
    return int(
        conn.execute(_START_ATTEMPT, in_flight_row(claimed, started_at, worker)).scalar_one()
    )


def in_flight_row(claimed: ClaimedJob, started_at: datetime, worker: str | None) -> dict[str, Any]:
    """The attempts row of the call ``claimed`` is about to make: outcome ``in_flight``,
    billing unknown, numbered the job's next call (:func:`start_attempt` and
    :class:`models.loop_attempts.LoopAttempts` write it)."""
    return {
        "job_id": claimed.job_id,
        "number": claimed.attempts + 1,
        "provider": claimed.provider,
        "started_at": started_at,
        "duration_ms": 0.0,
        "outcome": IN_FLIGHT,
        "billed": None,
        "worker": worker,
    }


def withdraw_attempt(conn: Connection, attempt_id: int) -> None:
    """Remove the row :func:`start_attempt` wrote for a call that will not be made (its
    limiter slot was forfeited after the write); committed as :func:`start_attempt`'s."""
    conn.execute(_DELETE_ATTEMPT, {"b_id": attempt_id})


def finish(
    db: Database,
    done: Sequence[tuple[ClaimedJob, JobRun, Transition]],
    *,
    now: datetime,
    worker: str | None = None,
    attempt_ids: Mapping[int, int] | None = None,
) -> list[str | None]:
    """Write a chunk's finish as :func:`finish_many` does; per job its new status, None
    where the lease was lost.

    A chunk of one job (every message at vendor rates) on PostgreSQL is written by one
    statement under autocommit (:mod:`models.single_finish`) when it needs nothing else:
    no circuit to open, no source facts to record, a call journaled by
    :func:`start_attempt` or no call at all, readings of one kind. Anything else, and
    SQLite, goes through :func:`finish_many` in a transaction.
    """
    attempt_ids = attempt_ids or {}
    alone = _alone(db, done, now, worker, attempt_ids)
    if alone is not None:
        with db.autocommit() as conn:
            held = single_finish.finish_alone(conn, **alone)
        return [str(done[0][2].status) if held else None]
    with db.transaction() as session:
        return finish_many(session, done, now=now, worker=worker, attempt_ids=attempt_ids)


def _alone(
    db: Database,
    done: Sequence[tuple[ClaimedJob, JobRun, Transition]],
    now: datetime,
    worker: str | None,
    attempt_ids: Mapping[int, int],
) -> dict[str, Any] | None:
    """:func:`single_finish.finish_alone`'s arguments for ``done``, or None where the
    general path is needed."""
    if len(done) != 1 or db.engine.dialect.name != "postgresql":
        return None
    claimed, run, transition = done[0]
    attempt_id = attempt_ids.get(claimed.job_id)
    if transition.circuit is not None or (run.source is not None and claimed.sha256 is None):
        return None
    if (run.call is None) != (attempt_id is None):  # a row to remove, or none to complete
        return None
    readings = run.answer.readings if run.answer is not None else []
    kinds = {type(r) for r in readings}
    if len(kinds) > 1:
        return None
    attempt = None
    if attempt_id is not None:
        row = _attempt_row(claimed, run, transition.attempts, worker)
        del row["number"], row["job_id"]  # as written when the call started
        attempt = (attempt_id, row)
    result = None
    if run.answer is not None:
        result = _result_row(claimed, run, transition, now)
        del result["job_id"]  # the statement takes it from the job's own UPDATE
    return {
        "job_id": claimed.job_id,
        "owner": claimed.owner,
        "job": _job_values(transition, now),
        "attempt": attempt,
        "result": result,
        "readings": (_READING_TABLES[kinds.pop()], [asdict(r) for r in readings])
        if kinds
        else None,
    }


def finish_many(
    session: Session,
    done: Sequence[tuple[ClaimedJob, JobRun, Transition]],
    *,
    now: datetime,
    worker: str | None = None,
    attempt_ids: Mapping[int, int] | None = None,
) -> list[str | None]:
    """Write each run's attempt, result and readings and the job's decided ``Transition``;
    per job its new status, None where the lease was lost (then only its call is written:
    the vendor saw it, whoever runs the job now).

    ``attempt_ids`` (job id -> the row :func:`start_attempt` wrote) are completed in place;
    other calls are inserted. One statement per table for the whole chunk, not per job
    (per-statement CPU is what limits a worker when the vendor is fast).
    """
    if not done:
        return []
    conn = session.connection()
    held = _write_transitions(conn, [(c, t) for c, _, t in done], now)
    mine = [(c, r, t) for c, r, t in done if c.job_id in held]
    numbered = [(c, r, t.attempts if c.job_id in held else c.attempts + 1) for c, r, t in done]
    _write_attempts(conn, numbered, worker, attempt_ids or {})
    _insert_results(conn, [(c, r, t) for c, r, t in mine if r.answer is not None], now)
    for claimed, run, transition in mine:
        if transition.circuit is not None:
            open_circuit(session, transition.circuit)
        if run.source is not None and claimed.sha256 is None:
            _record_source(session, claimed.image_id, run)
    written = {c.job_id: str(t.status) for c, _, t in mine}
    return [written.get(c.job_id) for c, _, _ in done]


def _write_transitions(
    conn: Connection, done: Sequence[tuple[ClaimedJob, Transition]], now: datetime
) -> set[int]:
    """Give each job whose lease is still its claim's its transition; those jobs' ids."""
    if len(done) == 1:  # one job per message, the usual case: one statement, not two
        claimed, transition = done[0]
        params = {"b_id": claimed.job_id, "b_owner": claimed.owner, **_job_values(transition, now)}
        row = conn.execute(_UPDATE_HELD_JOB, params).first()
        return {claimed.job_id} if row is not None else set()
    # Locked until commit, so the reconciler cannot take a lease back between this read and
    # the updates below (SQLite: the transaction already holds the write lock).
    locked = conn.execute(_LOCK_RUNNING, {"b_ids": [c.job_id for c, _ in done]})
    owners = {job_id: owner for job_id, owner in locked}
    updates: dict[frozenset[str], list[dict[str, Any]]] = {}
    held = set()
    for claimed, transition in done:
        if owners.get(claimed.job_id) != claimed.owner:
            continue
        held.add(claimed.job_id)
        values = _job_values(transition, now)
        updates.setdefault(frozenset(values), []).append({"b_id": claimed.job_id, **values})
    for rows in updates.values():  # one executemany per shape; usually one shape per chunk
        conn.execute(_UPDATE_JOB, rows)
    return held


# Built once, like the claim: a statement's construction is per-message CPU.
_LOCK_RUNNING = (
    select(Job.id, Job.lease_owner)
    .where(Job.id.in_(bindparam("b_ids", expanding=True)), Job.status == JobStatus.RUNNING)
    .order_by(Job.id)
    .with_for_update()
)
_UPDATE_JOB = update(Job).where(Job.id == bindparam("b_id"))
_UPDATE_HELD_JOB = update(Job).where(*single_finish.lease_held()).returning(Job.id)
_UPDATE_ATTEMPT = update(Attempt).where(Attempt.id == bindparam("b_id"))
_INSERT_ATTEMPT = insert(Attempt)
_START_ATTEMPT = insert(Attempt).returning(Attempt.id)
_DELETE_ATTEMPT = delete(Attempt).where(Attempt.id == bindparam("b_id"))
_INSERT_RESULT = insert(Result).returning(Result.id, sort_by_parameter_order=True)
_INSERT_READING = {table: insert(table) for table in _READING_TABLES.values()}


def _write_attempts(
    conn: Connection,
    runs: Sequence[tuple[ClaimedJob, JobRun, int]],
    worker: str | None,
    attempt_ids: Mapping[int, int],
) -> None:
    """Every call's row (``runs``: claim, run, the call's number): started ones completed,
    the others inserted. A row written down for a call then not made (its withdrawal
    failed, and the job ended without a call) is removed: the vendor never saw it."""
    started, new, unsent = [], [], []
    for claimed, run, number in runs:
        if run.call is None:
            if claimed.job_id in attempt_ids:
                unsent.append({"b_id": attempt_ids[claimed.job_id]})
            continue
        row = _attempt_row(claimed, run, number, worker)
        if claimed.job_id in attempt_ids:
            del row["number"], row["job_id"]  # as written when the call started
            started.append({"b_id": attempt_ids[claimed.job_id], **row})
        else:
            new.append(row)
    if started:
        conn.execute(_UPDATE_ATTEMPT, started)
    if new:
        conn.execute(_INSERT_ATTEMPT, new)
    if unsent:
        conn.execute(_DELETE_ATTEMPT, unsent)


def _insert_results(
    conn: Connection,
    answered: Sequence[tuple[ClaimedJob, JobRun, Transition]],
    now: datetime,
) -> None:
    """Results (one per answered call: the job's attempt number), then every reading with
    its result's id."""
    if not answered:
        return
    rows = [_result_row(claimed, run, transition, now) for claimed, run, transition in answered]
    ids = conn.execute(_INSERT_RESULT, rows).scalars()
    by_table: dict[type[Any], list[dict[str, Any]]] = {}
    for (claimed, run, _), result_id in zip(answered, ids, strict=True):
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
        conn.execute(_INSERT_READING[table], readings)


def _result_row(
    claimed: ClaimedJob, run: JobRun, transition: Transition, now: datetime
) -> dict[str, Any]:
    """The results row of an answered run (numbered by the job's call it answers)."""
    assert run.answer is not None
    return {
        "job_id": claimed.job_id,
        "attempt": transition.attempts,
        "image_id": claimed.image_id,
        "provider": claimed.provider,
        "outcome": run.answer.outcome.value,
        "raw": run.answer.raw,
        "warnings": list(run.answer.warnings),
        "created_at": now,
    }


def _job_values(transition: Transition, now: datetime) -> dict[str, Any]:
    """The job's columns for ``transition``: the lease released, and the status, counts,
    due time and error it was given."""
    values: dict[str, Any] = {
        "status": transition.status,
        "attempts": transition.attempts,
        "retries": transition.retries,
        "lease_owner": None,
        "lease_expires_at": None,
        "not_before": transition.not_before,
        "updated_at": now,
    }
    if transition.terminal:
        values["finished_at"] = now
    else:
        values["queued_at"] = None
    if not transition.keep_error:
        error = transition.error
        values["last_error_category"] = error.category if error else None
        values["last_error_code"] = error.code if error else None
        values["last_error_message"] = error.message if error else None
    return values


def open_circuit(session: Session, circuit: CircuitOpening) -> None:
    """Open (or extend) a provider's circuit as decided; ``opened_at`` marks a new opening."""
    state = session.get(ProviderState, circuit.provider, with_for_update=True)
    if state is None:
        state = ProviderState(provider=circuit.provider)
        session.add(state)
    if state.circuit_open_until is None or state.circuit_open_until <= circuit.at:
        state.opened_at = circuit.at
    state.circuit_open_until = circuit.until
    state.error_code = circuit.code
    state.error_message = circuit.message
    state.credential_id = circuit.credential_id
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
