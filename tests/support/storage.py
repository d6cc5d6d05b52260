"""Shortcuts over storage for tests that drive one job at a time by hand.

Production claims and finishes chunks (models.jobs.claim_many / finish_many) and decides
transitions with worker.policy; these wrap the same calls for a single job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import jobs, reports
from models.core import Job
from models.db import Database
from worker import policy
from worker.config import Settings
from worker.errors import Outcome
from worker.jobrun import CallFacts, JobRun
from worker.providers.base import PlateReading, VendorAnswer
from worker.settings import build_settings, settings_from_env
from worker.simulator.environment import made_up_credentials
from worker.sources import Source, SourceFacts


def settings_for(database_url: str, **values: object) -> Settings:
    """Settings of a test database, with made-up credentials for every provider (a batch
    for a provider without credentials is refused before registration)."""
    env = {**made_up_credentials(), "VREC_DATABASE_URL": database_url}
    return settings_from_env(env).model_copy(update=values)


def source(
    uri: str,
    sha256: str | None = None,
    size: int | None = None,
    width: int | None = None,
    height: int | None = None,
    error: str | None = None,
) -> Source:
    """A submitted item as registration would see it (facts only with a sha256)."""
    facts = SourceFacts(sha256, size or 0, width, height) if sha256 else None
    return Source(uri=uri, facts=facts, error=error)


def claim_one(
    session: Session, job_id: int, *, owner: str, now: datetime, lease_seconds: float
) -> jobs.ClaimedJob | None:
    claimed = jobs.claim_many(
        session.connection(), [job_id], owner=owner, now=now, lease_seconds=lease_seconds
    )
    return claimed[0] if claimed else None


def finish_chunk(
    session: Session,
    done: Sequence[tuple[jobs.ClaimedJob, JobRun]],
    *,
    settings: Settings | None = None,
    now: datetime,
    worker: str | None = None,
    attempt_ids: Mapping[int, int] | None = None,
) -> list[str | None]:
    """Decide each run's transition with the policy and write them, as a worker does
    (``attempt_ids``: the rows :func:`models.jobs.start_attempt` wrote for their calls)."""
    settings = settings or build_settings()
    decided = [
        (
            c,
            r,
            policy.next_state(
                r, policy.JobBefore(c.provider, c.attempts, c.retries), settings, now
            ),
        )
        for c, r in done
    ]
    return jobs.finish_many(session, decided, now=now, worker=worker, attempt_ids=attempt_ids)


def finish_one(
    session: Session,
    claimed: jobs.ClaimedJob,
    run: JobRun,
    *,
    settings: Settings | None = None,
    now: datetime,
    worker: str | None = None,
    attempt_id: int | None = None,
) -> str | None:
    ids = {claimed.job_id: attempt_id} if attempt_id is not None else None
    done = [(claimed, run)]
    return finish_chunk(session, done, settings=settings, now=now, worker=worker, attempt_ids=ids)[
        0
    ]


def status_counts(session: Session, batch_id: int | None = None) -> dict[str, int]:
    """status -> jobs (every status, zeros included), for one batch or all."""
    return reports.totals(reports.counts_by_provider(session, batch_id))


def plate_answer(plate: str, now: datetime) -> JobRun:
    """A billed success that read ``plate``, as a vendor call returns it."""
    reading = PlateReading(0, plate, "blue", confidence=0.9)
    answer = VendorAnswer(Outcome.SUCCEEDED, {"plate": plate}, [reading], billed=True)
    return JobRun(answer=answer, call=CallFacts(now, 10.0, 200, None, "r", True))


def answer_batch(
    db: Database,
    batch_id: int,
    run_for: Callable[[jobs.ClaimedJob], JobRun],
    *,
    now: datetime,
    settings: Settings | None = None,
) -> dict[str, int]:
    """Claim every due job of the batch and finish each with ``run_for(job)``, as workers
    would; status -> jobs written."""
    with db.transaction() as session:
        ids = list(
            session.scalars(select(Job.id).where(Job.batch_id == batch_id, Job.status == "pending"))
        )
        claimed = jobs.claim_many(
            session.connection(), ids, owner="test", now=now, lease_seconds=60
        )
    with db.transaction() as session:
        written = finish_chunk(
            session, [(c, run_for(c)) for c in claimed], settings=settings, now=now
        )
    counts: dict[str, int] = {}
    for status in written:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return counts
