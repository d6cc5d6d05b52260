"""Read-only questions the CLI asks: how is a batch doing, what failed and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.core import Image, Job, ProviderState
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
        select(Image.source_uri, Job.last_error_message)
        .join(Image, Image.id == Job.image_id)
        .where(Job.batch_id == batch_id, Job.status == JobStatus.INVALID_IMAGE)
        .group_by(Image.source_uri, Job.last_error_message)
        .order_by(Image.source_uri, Job.last_error_message)
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
