"""Following a batch to the end: dispatching its jobs and watching them finish.

:func:`run_batch` is what ``vrec run`` and ``vrec wait`` do: with no broker configured it
starts an embedded Celery worker in this process (:mod:`worker.embedded`); with one, the
``vrec worker`` processes do the work and this process only dispatches and watches.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from celery import Celery

from models.db import Database
from worker.app import make_app
from worker.config import Settings
from worker.dispatch import dispatch_once, reconcile_once, sender
from worker.embedded import embedded_worker
from worker.runtime import shutdown_runtime
from worker.service.status import Summary, summary

POLL_DUTY = 0.2  # the most of its time the follower keeps the database busy
RECONCILE_EVERY = 5.0  # seconds between the follower's reconciler passes

Progress = Callable[[dict[str, int]], None]  # status -> jobs, after each round


def pause(poll: float, spent: float) -> float:
    """Seconds to sleep after a round of dispatch and progress queries that took ``spent``:
    ``poll``, or longer when the queries are slow (a million-job batch's counts take
    ~130 ms on PostgreSQL), so that following a batch costs the database at most
    ``POLL_DUTY`` of one connection's time."""
    return max(poll, spent * (1 - POLL_DUTY) / POLL_DUTY)


def follow(
    db: Database,
    app: Celery,
    settings: Settings,
    batch_id: int,
    *,
    on_progress: Progress | None = None,
    poll: float = 0.2,
    timeout: float | None = None,
) -> Summary:
    """Dispatch and watch until every job of the batch is terminal, or only jobs of
    providers whose circuit is open remain (they stay pending for a later run)."""
    started = time.monotonic()
    last_reconcile = 0.0
    send = sender(app)
    while True:
        lap = time.monotonic()
        dispatch_once(db, send, settings)
        if time.monotonic() - last_reconcile > RECONCILE_EVERY:
            reconcile_once(db, settings)
            last_reconcile = time.monotonic()
        progress = summary(db, batch_id, detail=False)
        if on_progress:
            on_progress(progress.counts)
        if progress.complete or progress.stalled:
            result = summary(db, batch_id)
            result.seconds = time.monotonic() - started
            return result
        if timeout is not None and time.monotonic() - started > timeout:
            raise TimeoutError(f"batch {batch_id} not finished after {timeout:.0f}s")
        time.sleep(pause(poll, time.monotonic() - lap))


def run_batch(
    settings: Settings,
    db: Database,
    batch_id: int,
    *,
    concurrency: int = 16,
    on_progress: Progress | None = None,
) -> Summary:
    """Follow ``batch_id`` to the end; with no broker configured, a real Celery worker of
    ``concurrency`` threads in this process does the work (and its runtime is shut down
    afterwards)."""
    app = make_app(settings)
    workers = (
        embedded_worker(app, concurrency=concurrency)
        if settings.broker_url is None
        else contextlib.nullcontext()
    )
    try:
        with workers:
            return follow(db, app, settings, batch_id, on_progress=on_progress)
    finally:
        shutdown_runtime()
