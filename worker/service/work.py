"""What the Celery tasks do: run jobs by id, dispatch due jobs, reconcile lost ones.

Each runs on this process's runtime (:mod:`worker.runtime`): its database, event loop,
aiohttp session and limiter client.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

from celery import Celery

from models import jobs
from worker import pipeline, policy
from worker.dispatch import dispatch_once, reconcile_once, sender
from worker.runtime import get_runtime


def run_jobs(job_ids: list[int]) -> dict[str, int]:
    """Claim the jobs with a lease, run them (their vendor calls concurrently on this
    process's event loop), decide and store every outcome; status -> jobs. Idempotent by
    job id: ids already done, or held by another worker, are skipped."""
    rt = get_runtime()
    owner = uuid.uuid4().hex
    with rt.db.transaction() as session:
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
    now = datetime.now(UTC)
    done = [
        (
            c,
            r,
            policy.next_state(
                r, policy.JobBefore(c.provider, c.attempts, c.retries), rt.settings, now
            ),
        )
        for c, r in zip(claimed, runs, strict=True)
    ]
    with rt.db.transaction() as session:
        statuses = jobs.finish_many(session, done, now=now, worker=rt.worker_id)
    return dict(Counter(str(s) for s in statuses))


def _before(claimed: jobs.ClaimedJob) -> policy.JobBefore:
    return policy.JobBefore(claimed.provider, claimed.attempts, claimed.retries)


def dispatch_due(app: Celery) -> int:
    """Top up every provider's window onto ``app``'s broker; how many jobs were sent."""
    rt = get_runtime()
    return dispatch_once(rt.db, sender(app), rt.settings)


def reconcile_lost() -> int:
    """Return expired leases and lost messages' jobs to pending; how many."""
    rt = get_runtime()
    return reconcile_once(rt.db, rt.settings)
