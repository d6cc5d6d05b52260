"""Changes people make to batches after they ran: retry, cancel, prune.

Each is one or a few set-based statements: a million-job batch is retried or cancelled
without loading its jobs. Attempt history is never rewritten: a retried job keeps its
attempts and earlier results; only its status, retry budget and due time change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, exists, func, select, update
from sqlalchemy.orm import Session

from models.core import Attempt, Batch, Image, Item, Job, Result
from worker.lifecycle import JobStatus

RETRYABLE = (
    JobStatus.FAILED,
    JobStatus.INVALID_IMAGE,
    JobStatus.NO_RESULT,
    JobStatus.SUCCEEDED,
    JobStatus.CANCELLED,
)


def _batch_jobs(
    batch_id: int, statuses: Sequence[str], provider: str | None, code: str | None
) -> list[ColumnElement[bool]]:
    where = [Job.batch_id == batch_id, Job.status.in_(list(statuses))]
    if provider is not None:
        where.append(Job.provider == provider)
    if code is not None:
        where.append(Job.last_error_code == code)
    return where


def retry(
    session: Session,
    batch_id: int,
    *,
    statuses: Sequence[str],
    provider: str | None = None,
    code: str | None = None,
    now: datetime,
) -> int:
    """Return the batch's jobs in ``statuses`` (of ``provider``, with vendor ``code``) to
    pending with a fresh retry budget; how many. A job that had reused an answer will call
    the vendor this time."""
    result = session.connection().execute(
        update(Job)
        .where(*_batch_jobs(batch_id, statuses, provider, code))
        .values(
            status=JobStatus.PENDING,
            retries=0,
            not_before=None,
            queued_at=None,
            finished_at=None,
            reused_from_job_id=None,
            updated_at=now,
        )
    )
    return int(result.rowcount or 0)


def cancel(session: Session, batch_id: int, *, now: datetime) -> int:
    """End the batch's pending and queued jobs ``cancelled``; how many. Running jobs finish
    as they would; a message already on the broker for a cancelled job claims nothing."""
    result = session.connection().execute(
        update(Job)
        .where(Job.batch_id == batch_id, Job.status.in_([JobStatus.PENDING, JobStatus.QUEUED]))
        .values(
            status=JobStatus.CANCELLED,
            queued_at=None,
            not_before=None,
            finished_at=now,
            updated_at=now,
        )
    )
    return int(result.rowcount or 0)


@dataclass(frozen=True)
class Pruned:
    """What a prune removed (or, dry, would remove)."""

    batches: int
    items: int
    jobs: int
    attempts: int
    results: int
    images: int


def _orphan_images() -> ColumnElement[bool]:
    """Images that no item and no job refers to any more."""
    return and_(
        ~exists().where(Item.image_id == Image.id),
        ~exists().where(Job.image_id == Image.id),
    )


def prune(session: Session, *, before: datetime, dry_run: bool = False) -> Pruned:
    """Remove the batches created before ``before`` with their items, jobs, attempts,
    results and readings (the foreign keys cascade, SQLite's included), then the images
    no batch refers to any more. Answers that later batches reused stay with them: a
    reused answer is a copy."""
    old = select(Batch.id).where(Batch.created_at < before)
    old_jobs = select(Job.id).where(Job.batch_id.in_(old))

    def count(query: ColumnElement[bool], table: type[object]) -> int:
        return int(session.scalar(select(func.count()).select_from(table).where(query)) or 0)

    counts = {
        "batches": count(Batch.id.in_(old), Batch),
        "items": count(Item.batch_id.in_(old), Item),
        "jobs": count(Job.batch_id.in_(old), Job),
        "attempts": count(Attempt.job_id.in_(old_jobs), Attempt),
        "results": count(Result.job_id.in_(old_jobs), Result),
    }
    if dry_run:
        gone = ~exists().where(Item.image_id == Image.id, Item.batch_id.not_in(old))
        gone_jobs = ~exists().where(Job.image_id == Image.id, Job.batch_id.not_in(old))
        return Pruned(**counts, images=count(and_(gone, gone_jobs), Image))
    conn = session.connection()
    conn.execute(delete(Batch).where(Batch.created_at < before))
    images = conn.execute(delete(Image).where(_orphan_images()))
    return Pruned(**counts, images=int(images.rowcount or 0))
