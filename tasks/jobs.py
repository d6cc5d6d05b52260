"""The one task that does work: run a job by id. What it calls lives in worker/ and models/."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from celery import shared_task

from models import jobs
from models.db import transaction
from worker import pipeline
from worker.runtime import get_runtime


@shared_task(name="vrec.process_job", ignore_result=True)
def process_job(job_id: int) -> str | None:
    """Claim ``job_id`` with a lease, run it, store the outcome. Idempotent by job id."""
    rt = get_runtime()
    with transaction(rt.sessions) as session:
        claimed = jobs.claim(
            session,
            job_id,
            owner=uuid.uuid4().hex,
            now=datetime.now(UTC),
            lease_seconds=rt.settings.lease_seconds,
        )
    if claimed is None:  # done, taken by another worker, or not due: nothing to do
        return None
    run = pipeline.process_job(
        rt.provider(claimed.provider),
        claimed.source_uri,
        claimed.options,
        expected_sha256=claimed.sha256,
        run=rt.run,
        session=rt.http,
        limiter=rt.limiter,
        settings=rt.settings,
    )
    with transaction(rt.sessions) as session:
        return jobs.finish(
            session, claimed, run, settings=rt.settings, now=datetime.now(UTC), worker=rt.worker_id
        )
