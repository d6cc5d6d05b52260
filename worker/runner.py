"""Submitting a batch and following it to the end: what ``vrec run`` does, minus the terminal.

With no broker configured, :func:`embedded_worker` starts a real Celery worker (threads
pool) in this process on the in-memory transport; messages still go through the broker
and the task, exactly as with Redis and separate ``vrec worker`` processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from celery import Celery
from sqlalchemy import inspect
from sqlalchemy.orm import Session, sessionmaker

from models import reports
from models.batches import create_batch
from models.core import JobStatus, ProviderState
from models.db import transaction
from worker import ingest
from worker.config import Settings
from worker.dispatch import dispatch_once, reconcile_once
from worker.errors import ConfigError
from worker.providers.base import check_options
from worker.providers.registry import provider_class
from worker.sender import send_jobs

ACTIVE = (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING)


@dataclass
class Summary:
    batch_id: int
    by_provider: dict[str, dict[str, int]]  # provider -> status -> jobs
    blocked: list[ProviderState] = field(default_factory=list)  # providers with open circuits
    errors: list[reports.ErrorCount] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        """status -> jobs over all providers."""
        return reports.totals(self.by_provider)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def complete(self) -> bool:
        return not any(self.counts.get(s, 0) for s in ACTIVE)

    @property
    def stalled(self) -> bool:
        """Only jobs of providers with an open circuit are left, none in a worker's hands:
        they stay pending for later (`vrec resume`, `vrec wait`)."""
        blocked = {state.provider for state in self.blocked}
        if not blocked:
            return False
        for provider, counts in self.by_provider.items():
            waiting = counts.get(JobStatus.QUEUED, 0) + counts.get(JobStatus.RUNNING, 0)
            if waiting or (provider not in blocked and counts.get(JobStatus.PENDING, 0)):
                return False
        return True


def job_options(providers: Sequence[str], options: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Each provider's options: an option goes to the providers that know it."""
    per_provider: dict[str, dict[str, str]] = {}
    for name in providers:
        cls = provider_class(name)
        mine = {k: v for k, v in options.items() if k in cls.option_choices}
        per_provider[name] = check_options(cls, mine)
    unknown = [
        k for k in options if not any(k in provider_class(p).option_choices for p in providers)
    ]
    if unknown:
        raise ConfigError(f"option {unknown[0]!r} is not known to {', '.join(providers)}")
    return per_provider


def submit(
    sessions: sessionmaker[Session],
    sources: Sequence[str],
    providers: Sequence[str],
    options: Mapping[str, str],
    label: str | None = None,
) -> int:
    """Register every image under ``sources`` and create its jobs; the new batch's id."""
    per_provider = job_options(providers, options)
    with transaction(sessions) as session:
        batch = create_batch(
            session, ingest.entries(sources), per_provider, label=label, sources=list(sources)
        )
        return batch.id


def summary(sessions: sessionmaker[Session], batch_id: int, *, detail: bool = True) -> Summary:
    """Where a batch stands; with ``detail``, also its commonest errors and invalid files
    (left out while polling for progress)."""
    now = datetime.now(UTC)
    with transaction(sessions) as session:
        by_provider = reports.counts_by_provider(session, batch_id)
        result = Summary(
            batch_id=batch_id,
            by_provider=by_provider,
            blocked=[s for s in reports.open_circuits(session, now) if s.provider in by_provider],
        )
        if detail:
            result.errors = reports.common_errors(session, batch_id)
            result.invalid = reports.invalid_files(session, batch_id)
        return result


POLL_DUTY = 0.2  # the most of its time the follower keeps the database busy


def pause(poll: float, spent: float) -> float:
    """Seconds to sleep after a round of dispatch and progress queries that took ``spent``:
    ``poll``, or longer when the queries are slow (a million-job batch's counts take
    ~130 ms on PostgreSQL), so that following a batch costs the database at most
    ``POLL_DUTY`` of one connection's time."""
    return max(poll, spent * (1 - POLL_DUTY) / POLL_DUTY)


def follow(
    sessions: sessionmaker[Session],
    app: Celery,
    settings: Settings,
    batch_id: int,
    *,
    on_progress: Callable[[dict[str, int]], None] | None = None,
    poll: float = 0.2,
    timeout: float | None = None,
) -> Summary:
    """Dispatch and watch until every job of the batch is terminal, or only jobs of
    providers whose circuit is open remain (they stay pending for a later run)."""
    started = time.monotonic()
    last_reconcile = 0.0
    while True:
        lap = time.monotonic()
        dispatch_once(sessions, lambda ids, size: send_jobs(app, ids, size), settings)
        if time.monotonic() - last_reconcile > 5:
            reconcile_once(sessions, settings)
            last_reconcile = time.monotonic()
        progress = summary(sessions, batch_id, detail=False)
        if on_progress:
            on_progress(progress.counts)
        if progress.complete or progress.stalled:
            result = summary(sessions, batch_id)
            result.seconds = time.monotonic() - started
            return result
        if timeout is not None and time.monotonic() - started > timeout:
            raise TimeoutError(f"batch {batch_id} not finished after {timeout:.0f}s")
        time.sleep(pause(poll, time.monotonic() - lap))


@contextmanager
def embedded_worker(app: Celery, concurrency: int = 16) -> Iterator[None]:
    """A real Celery worker consuming ``app``'s broker from a thread of this process."""
    ready = threading.Event()

    class _Worker(app.WorkController):  # type: ignore[misc]
        def on_consumer_ready(self, consumer: object) -> None:
            ready.set()

    app.finalize()
    worker = _Worker(
        app=app,
        pool="threads",
        concurrency=concurrency,
        hostname=f"vrec-embedded-{id(app)}@localhost",
        loglevel="WARNING",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        ready_callback=None,
    )
    thread = threading.Thread(target=worker.start, name="vrec-embedded-worker", daemon=True)
    thread.start()
    if not ready.wait(timeout=30):
        raise RuntimeError("embedded Celery worker did not start within 30 s")
    try:
        yield
    finally:
        worker.stop(in_sighandler=False)
        thread.join(timeout=30)


def schema_ready(session: Session) -> bool:
    return inspect(session.connection()).has_table("jobs")
