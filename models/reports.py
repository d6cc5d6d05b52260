"""Read-only questions the service asks: how batches are doing, what failed and why."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from models.core import Attempt, Batch, Item, Job, ProviderState
from worker.lifecycle import JobStatus


@dataclass(frozen=True)
class ErrorCount:
    category: str
    code: str | None
    message: str
    count: int


def status_counts(session: Session, batch_id: int | None = None) -> dict[str, int]:
    """status -> jobs (every status, zeros included), for one batch or all."""
    return totals(counts_by_provider(session, batch_id))


def totals(by_provider: dict[str, dict[str, int]]) -> dict[str, int]:
    counts = {status.value: 0 for status in JobStatus}
    for per_status in by_provider.values():
        for status, n in per_status.items():
            counts[status] += n
    return counts


def common_errors(session: Session, batch_id: int, limit: int = 5) -> list[ErrorCount]:
    """Terminal errors of a batch grouped by category, code and message, commonest first."""
    n = func.count().label("n")
    rows = session.execute(
        select(Job.last_error_category, Job.last_error_code, Job.last_error_message, n)
        .where(
            Job.batch_id == batch_id,
            Job.status.in_([JobStatus.INVALID_IMAGE, JobStatus.FAILED]),
        )
        .group_by(Job.last_error_category, Job.last_error_code, Job.last_error_message)
        .order_by(n.desc(), Job.last_error_category)
        .limit(limit)
    )
    return [ErrorCount(cat or "unknown", code, msg or "", int(c)) for cat, code, msg, c in rows]


def invalid_files(session: Session, batch_id: int, limit: int = 50) -> list[tuple[str, str]]:
    """(source, reason) of a batch's images that could not be used, each pair once even
    when several providers refused the file for the same reason."""
    rows = session.execute(
        select(Item.uri, Job.last_error_message)
        .join(Item, (Item.batch_id == Job.batch_id) & (Item.image_id == Job.image_id))
        .where(Job.batch_id == batch_id, Job.status == JobStatus.INVALID_IMAGE)
        .group_by(Item.uri, Job.last_error_message)
        .order_by(Item.uri, Job.last_error_message)
        .limit(limit)
    )
    return [(uri, msg or "") for uri, msg in rows]


def counts_by_provider(session: Session, batch_id: int | None = None) -> dict[str, dict[str, int]]:
    """provider -> status -> jobs (every status, zeros included), for one batch or all."""
    query = select(Job.provider, Job.status, func.count()).group_by(Job.provider, Job.status)
    if batch_id is not None:
        query = query.where(Job.batch_id == batch_id)
    rows = session.execute(query)
    table: dict[str, dict[str, int]] = {}
    for provider, status, n in rows:
        table.setdefault(provider, {s.value: 0 for s in JobStatus})[status] = int(n)
    return dict(sorted(table.items()))


def open_circuits(session: Session, now: datetime) -> list[ProviderState]:
    return list(
        session.scalars(
            select(ProviderState)
            .where(ProviderState.circuit_open_until > now)
            .order_by(ProviderState.provider)
        )
    )


@dataclass(frozen=True)
class Calls:
    """A batch's vendor calls for one provider: made, billed, and answers reused."""

    calls: int = 0
    billed: int = 0
    throttled: int = 0
    reused: int = 0


def total_calls(calls: Iterable[Calls]) -> Calls:
    """The sum of several providers' calls."""
    every = list(calls)
    return Calls(
        calls=sum(c.calls for c in every),
        billed=sum(c.billed for c in every),
        throttled=sum(c.throttled for c in every),
        reused=sum(c.reused for c in every),
    )


def calls_by_provider(session: Session, batch_ids: Sequence[int]) -> dict[int, dict[str, Calls]]:
    """batch -> provider -> its calls (from the attempts) and reused answers (the jobs)."""
    out: dict[int, dict[str, Calls]] = {b: {} for b in batch_ids}
    if not batch_ids:
        return out
    made = session.execute(
        select(
            Job.batch_id,
            Job.provider,
            func.count(Attempt.id),
            func.coalesce(func.sum(case((Attempt.billed.is_(True), 1), else_=0)), 0),
            func.coalesce(func.sum(case((Attempt.outcome == "rate_limited", 1), else_=0)), 0),
        )
        .join(Attempt, Attempt.job_id == Job.id)
        .where(Job.batch_id.in_(batch_ids))
        .group_by(Job.batch_id, Job.provider)
    )
    for batch_id, provider, calls, billed, throttled in made:
        out[batch_id][provider] = Calls(int(calls), int(billed), int(throttled))
    reused = session.execute(
        select(Job.batch_id, Job.provider, func.count())
        .where(Job.batch_id.in_(batch_ids), Job.reused_from_job_id.is_not(None))
        .group_by(Job.batch_id, Job.provider)
    )
    for batch_id, provider, n in reused:
        known = out[batch_id].get(provider, Calls())
        out[batch_id][provider] = replace(known, reused=int(n))
    return out


def counts_by_batch(
    session: Session, batch_ids: Sequence[int]
) -> dict[int, dict[str, dict[str, int]]]:
    """batch -> provider -> status -> jobs, for several batches in one query."""
    out: dict[int, dict[str, dict[str, int]]] = {b: {} for b in batch_ids}
    if not batch_ids:
        return out
    rows = session.execute(
        select(Job.batch_id, Job.provider, Job.status, func.count())
        .where(Job.batch_id.in_(batch_ids))
        .group_by(Job.batch_id, Job.provider, Job.status)
    )
    for batch_id, provider, status, n in rows:
        per = out[batch_id].setdefault(provider, {s.value: 0 for s in JobStatus})
        per[status] = int(n)
    return {b: dict(sorted(p.items())) for b, p in out.items()}


def batches(
    session: Session,
    *,
    since: datetime | None = None,
    label: str | None = None,
    key: str | None = None,
    limit: int | None = None,
) -> list[Batch]:
    """Batches newest first, created since ``since``, whose label contains ``label``."""
    query = select(Batch).order_by(Batch.id.desc())
    if since is not None:
        query = query.where(Batch.created_at >= since)
    if label is not None:
        query = query.where(Batch.label.contains(label, autoescape=True))
    if key is not None:
        query = query.where(Batch.idempotency_key == key)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def batch_span(session: Session, batch_id: int) -> tuple[datetime, datetime | None]:
    """When the batch was created, and when its last job finished (None: none yet)."""
    created = session.scalar(select(Batch.created_at).where(Batch.id == batch_id))
    assert created is not None, f"no batch {batch_id}"
    last = session.scalar(select(func.max(Job.finished_at)).where(Job.batch_id == batch_id))
    return created, last


def finished_since(session: Session, batch_id: int, since: datetime) -> dict[str, int]:
    """provider -> the batch's jobs that reached a terminal status since ``since``."""
    rows = session.execute(
        select(Job.provider, func.count())
        .where(Job.batch_id == batch_id, Job.finished_at >= since)
        .group_by(Job.provider)
    )
    return {provider: int(n) for provider, n in rows}


def errors_by_code(session: Session, batch_id: int) -> list[CodeCount]:
    """The batch's failed and invalid jobs by provider, category and vendor code, each with
    one message that code came with (and how many others); commonest first."""
    n = func.count().label("n")
    rows = session.execute(
        select(
            Job.provider,
            Job.last_error_category,
            Job.last_error_code,
            func.min(Job.last_error_message),
            n,
            func.count(func.distinct(Job.last_error_message)),
        )
        .where(
            Job.batch_id == batch_id,
            Job.status.in_([JobStatus.INVALID_IMAGE, JobStatus.FAILED]),
        )
        .group_by(Job.provider, Job.last_error_category, Job.last_error_code)
        .order_by(n.desc(), Job.provider)
    )
    return [
        CodeCount(
            provider, category or "unknown", code, message or "", int(count), max(0, kinds - 1)
        )
        for provider, category, code, message, count, kinds in rows
    ]


@dataclass(frozen=True)
class CodeCount:
    provider: str
    category: str
    code: str | None
    message: str
    count: int
    other_messages: int = 0  # different messages of the same code besides ``message``
