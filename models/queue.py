"""The database side of dispatching and reconciling: which jobs go onto the broker, and
which come back to ``pending`` because their message or worker was lost."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session

from models.core import Attempt, Job, ProviderState
from models.reports import open_circuits
from worker.lifecycle import IN_FLIGHT, LOST, JobStatus

LOST_MESSAGE = "the worker stopped before the vendor's answer was written; billing unknown"


def providers_due(session: Session, now: datetime, providers: Iterable[str]) -> list[str]:
    """Those of ``providers`` with pending jobs that are due and whose circuit is closed.

    One EXISTS probe per provider on ``ix_jobs_due`` (it stops at the first due job), not
    a DISTINCT over every pending job: that took 100 ms at a million pending jobs, and the
    dispatcher asks every few hundred milliseconds while ``vrec run`` follows a batch.
    """
    blocked = {state.provider for state in open_circuits(session, now)}
    due = []
    for provider in providers:
        if provider in blocked:
            continue
        waiting = select(Job.id).where(
            Job.provider == provider,
            Job.status == JobStatus.PENDING,
            or_(Job.not_before.is_(None), Job.not_before <= now),
        )
        if session.scalar(select(waiting.exists())):
            due.append(provider)
    return due


def in_flight(session: Session, provider: str) -> int:
    """Jobs of ``provider`` on the broker or in a worker's hands."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.provider == provider, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        )
        or 0
    )


def mark_queued(session: Session, provider: str, limit: int, now: datetime) -> list[int]:
    """Move up to ``limit`` due pending jobs of ``provider`` to ``queued``; their ids.

    SKIP LOCKED lets several dispatchers (``vrec run`` and beat) work at once on
    PostgreSQL; SQLite serialises writers anyway.
    """
    if limit <= 0:
        return []
    ids = list(
        session.scalars(
            select(Job.id)
            .where(
                Job.provider == provider,
                Job.status == JobStatus.PENDING,
                or_(Job.not_before.is_(None), Job.not_before <= now),
            )
            .order_by(Job.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(ids), Job.status == JobStatus.PENDING)
            .values(status=JobStatus.QUEUED, queued_at=now, updated_at=now)
        )
    return ids


def reconcile(session: Session, now: datetime, *, queued_timeout: float) -> int:
    """Return lost work to ``pending``: expired leases, and queued jobs whose message
    never arrived. A late duplicate message then finds the job claimed or done."""
    lapsed = (Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
    # A job whose row is locked is being finished right now (models.jobs.finish): skip
    # it rather than wait for, or deadlock with, that worker. (SQLite has no row locks;
    # its transactions take turns.)
    free = select(Job.id).where(*lapsed).with_for_update(skip_locked=True)
    expired = session.execute(
        update(Job)
        .where(Job.id.in_(free), *lapsed)
        .values(status=JobStatus.PENDING, lease_owner=None, lease_expires_at=None, updated_at=now)
        .returning(Job.id)
    ).all()
    lose_calls(session.connection(), [job_id for (job_id,) in expired])
    stale = session.execute(
        update(Job)
        .where(
            Job.status == JobStatus.QUEUED,
            Job.queued_at < now - timedelta(seconds=queued_timeout),
        )
        .values(status=JobStatus.PENDING, queued_at=None, updated_at=now)
        .returning(Job.id)
    ).all()
    return len(expired) + len(stale)


def close_stale_circuits(session: Session, credentials: Mapping[str, str], now: datetime) -> int:
    """Close the open circuits that a different credential opened than the one each provider
    has now (``credentials``: provider -> credential id); how many. The vendor refused the
    old credential, not this one."""
    closed = 0
    for provider, credential in credentials.items():
        result = session.connection().execute(
            update(ProviderState)
            .where(
                ProviderState.provider == provider,
                ProviderState.circuit_open_until > now,
                ProviderState.credential_id.is_not(None),
                ProviderState.credential_id != credential,
            )
            .values(circuit_open_until=None, updated_at=now)
        )
        closed += int(result.rowcount or 0)
    return closed


def release_leases(session: Session, owner_prefix: str, now: datetime) -> int:
    """Hand back to pending the running jobs whose lease a stopping process holds (owners
    starting with ``owner_prefix``); how many. Without this they would wait for the lease
    to expire (``VREC_LEASE_SECONDS``) before anyone ran them again."""
    conn = session.connection()
    released = conn.execute(
        update(Job)
        .where(
            Job.status == JobStatus.RUNNING,
            Job.lease_owner.startswith(owner_prefix, autoescape=True),
        )
        .values(status=JobStatus.PENDING, lease_owner=None, lease_expires_at=None, updated_at=now)
        .returning(Job.id)
    ).all()
    lose_calls(conn, [job_id for (job_id,) in released])
    return len(released)


def lose_calls(conn: Connection, job_ids: list[int]) -> int:
    """Mark the calls still ``in_flight`` of these jobs (their lease was just taken back)
    ``lost``, billing unknown, and count them among each job's calls, so its next call is
    numbered after them and the attempt cap counts them; how many.

    A worker that was only slow, not dead, still completes its row when it finishes
    (:func:`models.jobs.finish`): the vendor's answer replaces the guess.
    """
    if not job_ids:
        return 0
    lost = conn.execute(
        update(Attempt)
        .where(Attempt.job_id.in_(job_ids), Attempt.outcome == IN_FLIGHT)
        .values(outcome=LOST, billed=None, error_message=LOST_MESSAGE)
        .returning(Attempt.job_id, Attempt.number)
    ).all()
    last: dict[int, int] = {}
    for job_id, number in lost:
        last[job_id] = max(number, last.get(job_id, 0))
    if last:
        conn.execute(
            update(Job)
            .where(Job.id == bindparam("b_id"))
            .values(
                attempts=case(
                    (Job.attempts < bindparam("b_last"), bindparam("b_last")),
                    else_=Job.attempts,
                )
            ),
            [{"b_id": job_id, "b_last": number} for job_id, number in last.items()],
        )
    return len(lost)


def unqueue_jobs(session: Session, job_ids: list[int], now: datetime) -> int:
    """Return these queued jobs to pending (their message was never sent); how many."""
    result = session.connection().execute(
        update(Job)
        .where(Job.id.in_(job_ids), Job.status == JobStatus.QUEUED)
        .values(status=JobStatus.PENDING, queued_at=None, updated_at=now)
    )
    return int(result.rowcount or 0)


def unqueue(session: Session, now: datetime) -> int:
    """Return every queued job to pending; how many. For an embedded worker stopping: its
    messages lived in this process's memory and are gone with it."""
    result = session.connection().execute(
        update(Job)
        .where(Job.status == JobStatus.QUEUED)
        .values(status=JobStatus.PENDING, queued_at=None, updated_at=now)
    )
    return int(result.rowcount or 0)


def reset_circuit(session: Session, provider: str) -> bool:
    state = session.get(ProviderState, provider)
    if state is None or state.circuit_open_until is None:
        return False
    state.circuit_open_until = None
    return True
