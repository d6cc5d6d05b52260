"""Claiming a job with a lease and finishing it in one transaction.

Every step is idempotent by job id: a claim only succeeds on a job that is queued (or
due and pending), and finishing only writes when this worker still holds the lease, so
a message delivered twice never produces two results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
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


def claim(
    session: Session, job_id: int, *, owner: str, now: datetime, lease_seconds: float
) -> ClaimedJob | None:
    """Take the lease on ``job_id``; None if it is not ours to run (done, running, not due)."""
    claimed = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status.in_([JobStatus.QUEUED, JobStatus.PENDING]),
            or_(Job.not_before.is_(None), Job.not_before <= now),
        )
        .values(
            status=JobStatus.RUNNING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            updated_at=now,
        )
        .returning(Job.id)
    ).scalar_one_or_none()
    if claimed is None:
        return None
    job, image = session.execute(
        select(Job, Image).join(Image, Image.id == Job.image_id).where(Job.id == job_id)
    ).one()
    if circuit_open(session, job.provider, now):
        _release(job, now, not_before=None)  # its provider is down: keep it pending, no call
        return None
    return ClaimedJob(
        job_id=job.id,
        batch_id=job.batch_id,
        image_id=image.id,
        provider=job.provider,
        options=dict(job.options or {}),
        source_uri=image.source_uri,
        sha256=image.sha256,
        owner=owner,
    )


def circuit_open(session: Session, provider: str, now: datetime) -> bool:
    until = session.scalar(
        select(ProviderState.circuit_open_until).where(ProviderState.provider == provider)
    )
    return until is not None and until > now


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
    job = session.execute(
        select(Job)
        .where(
            Job.id == claimed.job_id,
            Job.status == JobStatus.RUNNING,
            Job.lease_owner == claimed.owner,
        )
        .with_for_update()
    ).scalar_one_or_none()
    if job is None:
        return None
    if run.source is not None:
        _record_source(session, claimed.image_id, run)
    if run.call is not None:
        job.attempts += 1
        session.add(_attempt_row(claimed, run, job.attempts, worker))

    if run.answer is not None:
        result = Result(
            job_id=job.id,
            image_id=claimed.image_id,
            provider=claimed.provider,
            outcome=run.answer.outcome,
            raw=run.answer.raw,
            warnings=list(run.answer.warnings),
        )
        session.add(result)
        session.flush()
        for reading in run.answer.readings:
            table = _READING_TABLES[type(reading)]
            session.add(
                table(
                    **asdict(reading),
                    result_id=result.id,
                    job_id=job.id,
                    image_id=claimed.image_id,
                    provider=claimed.provider,
                )
            )
        _close(job, now, JobStatus(run.answer.outcome.value))
        _clear_error(job)
    elif run.error is not None:
        _set_error(job, run.error)
        _after_error(session, job, run.error, settings, now)
    else:  # the limiter had no slot soon enough: give the job back, no call made
        _release(job, now, not_before=now + timedelta(seconds=run.give_back or 0.0))
    return job.status


def _after_error(
    session: Session, job: Job, error: JobError, settings: Settings, now: datetime
) -> None:
    if error.outcome is Outcome.INVALID_IMAGE:
        _close(job, now, JobStatus.INVALID_IMAGE)
    elif error.outcome is Outcome.PROVIDER_UNAVAILABLE:
        open_circuit(session, job.provider, error, now, settings.circuit_cooldown_seconds)
        _release(job, now, not_before=None)
    else:
        job.retries += 1
        delay = retry_delay(error, job.retries, settings)
        if delay is None:
            _close(job, now, JobStatus.FAILED)
        else:
            _release(job, now, not_before=now + timedelta(seconds=delay))


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


def _attempt_row(claimed: ClaimedJob, run: JobRun, number: int, worker: str | None) -> Attempt:
    assert run.call is not None
    call = run.call
    return Attempt(
        job_id=claimed.job_id,
        number=number,
        provider=claimed.provider,
        started_at=call.started_at,
        duration_ms=call.duration_ms,
        http_status=call.http_status,
        vendor_code=call.vendor_code,
        vendor_request_id=call.request_id,
        outcome=(run.outcome or Outcome.TRANSIENT).value,
        error_message=run.error.message if run.error else None,
        billed=call.billed,
        worker=worker,
    )


def _record_source(session: Session, image_id: int, run: JobRun) -> None:
    """Fill in what registration could not know (URL images) without clobbering a sibling."""
    assert run.source is not None
    image = session.get(Image, image_id)
    if image is None:
        return
    src = run.source
    if image.sha256 is None:
        taken = session.scalar(select(Image.id).where(Image.sha256 == src.sha256))
        if taken is None:
            image.sha256 = src.sha256
    image.bytes = image.bytes or src.size
    image.width = image.width or src.width
    image.height = image.height or src.height
    image.format = image.format or src.format


def _close(job: Job, now: datetime, status: JobStatus) -> None:
    job.status = status
    job.finished_at = now
    job.lease_owner = None
    job.lease_expires_at = None
    job.not_before = None


def _release(job: Job, now: datetime, *, not_before: datetime | None) -> None:
    job.status = JobStatus.PENDING
    job.lease_owner = None
    job.lease_expires_at = None
    job.queued_at = None
    job.not_before = not_before
    job.updated_at = now


def _set_error(job: Job, error: JobError) -> None:
    job.last_error_category = error.category
    job.last_error_code = error.vendor_code
    job.last_error_message = error.message[:2000]  # provider and code have their own columns


def _clear_error(job: Job) -> None:
    job.last_error_category = job.last_error_code = job.last_error_message = None
