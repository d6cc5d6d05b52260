"""Read queries of the HTML batch report: the jobs to show in its gallery with what the
vendors read, the batch's throughput over time, and its size in files and images."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, cast, func, literal, select
from sqlalchemy.orm import Session

from models.base import UTCDateTime
from models.core import Attempt, Item, Job, Result
from models.readings import CarModelCandidateRow, PlateReadingRow, VehicleLicense
from worker.lifecycle import JobStatus
from worker.providers.base import CarModelCandidate, PlateReading, Reading, VehicleLicenseReading

_READINGS: tuple[tuple[type[Any], type[Any], Any], ...] = (
    (PlateReadingRow, PlateReading, PlateReadingRow.position),
    (VehicleLicense, VehicleLicenseReading, VehicleLicense.id),
    (CarModelCandidateRow, CarModelCandidate, CarModelCandidateRow.rank),
)
NOT_SHOWN = (JobStatus.INVALID_IMAGE,)  # listed with their reasons, not pictured


@dataclass(frozen=True)
class GalleryJob:
    """One job of the gallery: its image's first file in the batch and its latest answer."""

    job_id: int
    provider: str
    status: str
    source_uri: str
    error_code: str | None
    error_message: str | None
    reused: bool
    readings: list[Reading] = field(default_factory=list)


def sizes(session: Session, batch_id: int) -> tuple[int, int]:
    """(files submitted, distinct images) of a batch."""
    files, images = session.execute(
        select(func.count(), func.count(func.distinct(Item.image_id))).where(
            Item.batch_id == batch_id
        )
    ).one()
    return int(files), int(images)


def gallery(session: Session, batch_id: int, limit: int) -> tuple[list[GalleryJob], dict[str, int]]:
    """The first ``limit`` jobs to picture (by image, then provider), and status -> how many
    more jobs there are to picture beyond them."""
    first_item = (
        select(Item.uri)
        .where(Item.batch_id == Job.batch_id, Item.image_id == Job.image_id)
        .order_by(Item.id)
        .limit(1)
        .scalar_subquery()
    )
    shown = (Job.batch_id == batch_id) & Job.status.not_in(NOT_SHOWN)
    rows = session.execute(
        select(
            Job.id,
            Job.provider,
            Job.status,
            first_item,
            Job.last_error_code,
            Job.last_error_message,
            Job.reused_from_job_id,
        )
        .where(shown)
        .order_by(Job.image_id, Job.provider)
        .limit(limit)
    ).all()
    readings = _readings(session, [row[0] for row in rows])
    jobs = [
        GalleryJob(
            job_id,
            provider,
            status,
            uri,
            code,
            message,
            reused is not None,
            readings.get(job_id, []),
        )
        for job_id, provider, status, uri, code, message, reused in rows
    ]
    counts = session.execute(
        select(Job.status, func.count()).where(shown).group_by(Job.status)
    ).all()
    more = {status: int(n) for status, n in counts}
    for job in jobs:
        more[job.status] -= 1
    return jobs, {status: n for status, n in sorted(more.items()) if n}


def _readings(session: Session, job_ids: list[int]) -> dict[int, list[Reading]]:
    """job -> the readings of its latest result."""
    if not job_ids:
        return {}
    latest = dict(
        session.execute(
            select(func.max(Result.id), Result.job_id)
            .where(Result.job_id.in_(job_ids))
            .group_by(Result.job_id)
        ).all()
    )
    out: dict[int, list[Reading]] = {}
    for table, reading, order in _READINGS:
        names = [f.name for f in fields(reading)]
        rows = session.scalars(
            select(table).where(table.result_id.in_(list(latest))).order_by(table.result_id, order)
        )
        for row in rows:
            out.setdefault(latest[row.result_id], []).append(
                reading(**{name: getattr(row, name) for name in names})
            )
    return out


@dataclass(frozen=True)
class Throughput:
    """Jobs finished per bucket of ``bucket_seconds`` from ``start``, per provider, and the
    vendor calls started per bucket. Jobs finished at registration did no work and are
    left out."""

    start: datetime | None
    bucket_seconds: float
    finished: dict[str, list[int]]
    calls: list[int]

    @property
    def buckets(self) -> int:
        return len(self.calls)


def _seconds_after(column: Any, start: datetime, dialect: str) -> ColumnElement[float]:
    if dialect == "sqlite":  # naive UTC text; julianday() reads it
        text = start.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
        return (func.julianday(column) - func.julianday(text)) * 86400.0
    return cast(func.extract("epoch", column - literal(start, UTCDateTime())), Float)


def _bucket(column: Any, start: datetime, width: float, dialect: str) -> ColumnElement[int]:
    offset = _seconds_after(column, start, dialect) / width
    # CAST truncates on SQLite (offsets are >= 0, so that is floor); PostgreSQL's rounds.
    return cast(offset if dialect == "sqlite" else func.floor(offset), Integer)


def throughput(session: Session, batch_id: int, max_buckets: int = 60) -> Throughput:
    # Jobs a worker finished: those finished at registration (reused answers, unreadable
    # files) have finished_at == created_at and did no work.
    worked = (Job.batch_id == batch_id) & (Job.finished_at > Job.created_at)
    first_call, first_done, end = session.execute(
        select(func.min(Attempt.started_at), func.min(Job.finished_at), func.max(Job.finished_at))
        .select_from(Job)
        .outerjoin(Attempt, Attempt.job_id == Job.id)
        .where(worked)
    ).one()
    if first_done is None or end is None:
        return Throughput(None, 1.0, {}, [])
    start = min(first_done, first_call or first_done)
    span = max(1.0, (end - start).total_seconds())
    width = float(max(1, math.ceil(span / max_buckets)))
    n = int(span // width) + 1
    dialect = session.get_bind().dialect.name
    finished: dict[str, list[int]] = {}
    bucket = _bucket(Job.finished_at, start, width, dialect)
    for provider, index, count in session.execute(
        select(Job.provider, bucket, func.count()).where(worked).group_by(Job.provider, bucket)
    ):
        finished.setdefault(provider, [0] * n)[min(n - 1, max(0, int(index)))] += int(count)
    calls = [0] * n
    started = _bucket(Attempt.started_at, start, width, dialect)
    for index, count in session.execute(
        select(started, func.count())
        .join(Job, Attempt.job_id == Job.id)
        .where(Job.batch_id == batch_id)
        .group_by(started)
    ):
        calls[min(n - 1, max(0, int(index)))] += int(count)
    return Throughput(start, width, dict(sorted(finished.items())), calls)
