"""The one task that does work: run a chunk of jobs by id. What it calls lives in worker/
and models/."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

from celery import shared_task

from models import jobs
from models.db import transaction
from worker import pipeline
from worker.runtime import get_runtime


@shared_task(name="vrec.process_jobs", ignore_result=True)
def process_jobs(job_ids: list[int]) -> dict[str, int]:
    """Claim the jobs with a lease, run them (their vendor calls concurrently on this
    process's event loop), store every outcome. Idempotent by job id: ids already done,
    or held by another worker, are skipped."""
    rt = get_runtime()
    owner = uuid.uuid4().hex
    with transaction(rt.sessions) as session:
        claimed = jobs.claim_many(
            session,
            job_ids,
            owner=owner,
            now=datetime.now(UTC),
            lease_seconds=rt.settings.lease_seconds,
        )
    if not claimed:
        return {}
    specs = [
        pipeline.JobSpec(rt.provider(c.provider), c.source_uri, c.options, c.sha256)
        for c in claimed
    ]
    runs = pipeline.process_jobs(
        specs, run=rt.run, session=rt.http, limiter=rt.limiter, settings=rt.settings
    )
    with transaction(rt.sessions) as session:
        statuses = jobs.finish_many(
            session,
            list(zip(claimed, runs, strict=True)),
            settings=rt.settings,
            now=datetime.now(UTC),
            worker=rt.worker_id,
        )
    return dict(Counter(str(s) for s in statuses))
