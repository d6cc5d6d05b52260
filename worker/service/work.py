"""What the Celery tasks do: run jobs by id, dispatch due jobs, reconcile lost ones.

Each runs on this process's runtime (:mod:`worker.runtime`): its database, event loop,
aiohttp session and limiter client.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime

from celery import Celery

from models import jobs
from worker import pipeline, policy
from worker.dispatch import dispatch_once, reconcile_once, sender
from worker.errors import UsageError
from worker.providers.base import Provider
from worker.runtime import get_runtime
from worker.service import producer, schedules, telemetry
from worker.service.attempts import AttemptJournal

log = logging.getLogger(__name__)


def run_jobs(job_ids: list[int]) -> dict[str, int]:
    """Claim the jobs with a lease, run them (their vendor calls concurrently on this
    process's event loop), decide and store every outcome; status -> jobs. Idempotent by
    job id: ids already done, or held by another worker, are skipped."""
    rt = get_runtime()
    owner = rt.lease_owner()
    with rt.db.autocommit() as conn:
        claimed = jobs.claim_many(
            conn,
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
    journal = AttemptJournal(rt.db, claimed, rt.worker_id, rt.attempt_rows)
    runs = pipeline.process_jobs(
        specs,
        run=rt.run,
        session=rt.http,
        limiter=rt.limiter,
        settings=rt.settings,
        journal=journal,
    )
    now = datetime.now(UTC)
    done = [
        (c, r, policy.next_state(r, _before(c, rt.provider(c.provider)), rt.settings, now))
        for c, r in zip(claimed, runs, strict=True)
    ]
    statuses = jobs.finish(rt.db, done, now=now, worker=rt.worker_id, attempt_ids=journal.ids)
    telemetry.report_runs(done, statuses)
    return dict(Counter(str(s) for s in statuses))


def _before(claimed: jobs.ClaimedJob, provider: Provider) -> policy.JobBefore:
    credential = provider.credential_id()
    return policy.JobBefore(claimed.provider, claimed.attempts, claimed.retries, credential)


def submit_batch(
    sources: list[str],
    providers: list[str],
    options: dict[str, str],
    label: str | None,
    idempotency_key: str | None,
    force: bool,
) -> int:
    """Register a batch for a producer (the ``vrec.submit`` task); its id. Bad input is
    logged and raised: the task fails visibly (in logs and Flower), nothing is created."""
    rt = get_runtime()
    try:
        return producer.submit_with(
            rt.db,
            rt.settings,
            sources,
            providers,
            options,
            label=label,
            idempotency_key=idempotency_key,
            force=force,
        )
    except UsageError as exc:
        log.error("vrec.submit refused (key %s): %s", idempotency_key, exc)
        raise


def dispatch_due(app: Celery) -> int:
    """Top up every provider's window onto ``app``'s broker; how many jobs were sent."""
    rt = get_runtime()
    return dispatch_once(rt.db, sender(app), rt.settings)


def reconcile_lost() -> int:
    """Return expired leases and lost messages' jobs to pending; how many."""
    rt = get_runtime()
    return reconcile_once(rt.db, rt.settings)


def run_schedules() -> int:
    """Run the schedules whose tick has come (beat's ``vrec.schedules``); how many ran."""
    rt = get_runtime()
    return len(schedules.run_due(rt.db, rt.settings))
