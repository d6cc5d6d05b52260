"""Read queries behind the database-derived gauges (``vrec metrics``): cheap aggregates
over the jobs table's (provider, status, ...) index, asked once per scrape."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.core import Job
from worker.lifecycle import ACTIVE, JobStatus

WAITING = (JobStatus.PENDING, JobStatus.QUEUED)  # jobs no worker holds yet


def oldest_waiting(session: Session) -> dict[str, datetime]:
    """provider -> when its oldest pending or queued job was created."""
    rows = session.execute(
        select(Job.provider, func.min(Job.created_at))
        .where(Job.status.in_(WAITING))
        .group_by(Job.provider)
    )
    return {provider: created for provider, created in rows}  # min() keeps UTCDateTime


def active_batches(session: Session) -> int:
    """Batches with a job still pending, queued or running."""
    count = session.scalar(
        select(func.count(func.distinct(Job.batch_id))).where(Job.status.in_(ACTIVE))
    )
    return int(count or 0)
