"""Following a batch to the end: dispatching its jobs and watching them finish.

:func:`run_batch` is what ``vrec run`` and ``vrec wait`` do: with no broker configured it
starts an embedded Celery worker in this process (:mod:`worker.embedded`); with one, the
``vrec worker`` processes do the work and this process only dispatches and watches.

Interrupts (SIGINT, SIGTERM) strand nothing. The first stops dispatching and lets calls in
flight finish within their timeout; the second cancels them. Either way the jobs this
process holds (embedded mode: its leases and every queued job, whose messages lived in
its memory) go back to pending at once, so ``vrec wait BATCH`` resumes immediately; the
summary is marked ``paused``.

A broker that stops answering is reported once, retried with a growing pause, and followed
again when it is back; with a broker and no worker answering, the follower says so
within a few seconds and names the command that starts one.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import FrameType

from celery import Celery

from models import queue
from models.db import Database
from worker.app import make_app
from worker.config import Settings
from worker.dispatch import dispatch_once, reconcile_once, sender
from worker.embedded import embedded_worker
from worker.errors import BrokerUnavailable
from worker.lifecycle import ACTIVE
from worker.providers.base import rate_of
from worker.providers.registry import get_provider
from worker.runtime import current_runtime, shutdown_runtime
from worker.service.status import Progress, ProviderProgress, Summary, summary

POLL_DUTY = 0.2  # the most of its time the follower keeps the database busy
RECONCILE_EVERY = 5.0  # seconds between the follower's reconciler passes
RATE_WINDOW = 10.0  # seconds of history behind "jobs per second"
NO_WORKER_AFTER = 3.0  # seconds with no worker answering before saying so
BROKER_BACKOFF_CAP = 30.0


OnProgress = Callable[[Progress], None]
OnNotice = Callable[[str], None]  # one line for the person following (warnings, pauses)


class _Rates:
    """Done counts over the last RATE_WINDOW seconds, per provider."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[tuple[float, int]]] = {}

    def rate(self, provider: str, now: float, done: int) -> float:
        seen = self._seen.setdefault(provider, deque())
        seen.append((now, done))
        while len(seen) > 2 and now - seen[1][0] >= RATE_WINDOW:
            seen.popleft()
        first_time, first_done = seen[0]
        span = now - first_time
        return (done - first_done) / span if span > 0 else 0.0


def _progress(
    summary_now: Summary, settings: Settings, rates: _Rates, elapsed: float, now: float
) -> Progress:
    """ETA per provider: its remaining jobs at the rate it reaches (the vendor is the
    bottleneck), or at its configured rate until the follower has seen a few seconds."""
    progress = Progress(summary_now.batch_id, elapsed, summary_now.counts)
    for provider, counts in summary_now.by_provider.items():
        remaining = sum(counts.get(s, 0) for s in ACTIVE)
        total = sum(counts.values())
        rate = rates.rate(provider, now, total - remaining)
        configured = rate_of(get_provider(provider, settings))
        speed = rate if rate > 0 and elapsed >= RATE_WINDOW / 2 else configured
        eta = remaining / speed if remaining and speed > 0 else None
        progress.providers[provider] = ProviderProgress(total - remaining, total, rate, eta)
    return progress


class Interrupts:
    """SIGINT and SIGTERM while a batch is followed: counted, not raised, so the follower
    can stop cleanly. The second calls ``on_second`` (abort calls in flight)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.count = 0
        self.on_second: Callable[[], None] | None = None

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        if self.count >= 2 and self.on_second is not None:
            self.on_second()

    @contextlib.contextmanager
    def installed(self) -> Iterator[Interrupts]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # only the main thread gets signals
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def pause(poll: float, spent: float) -> float:
    """Seconds to sleep after a round of dispatch and progress queries that took ``spent``:
    ``poll``, or longer when the queries are slow (a million-job batch's counts take
    ~130 ms on PostgreSQL), so that following a batch costs the database at most
    ``POLL_DUTY`` of one connection's time."""
    return max(poll, spent * (1 - POLL_DUTY) / POLL_DUTY)


class _Broker:
    """The dispatcher's view of the broker: reports an outage once, backs off, says when
    it is back."""

    def __init__(self, notice: OnNotice | None) -> None:
        self.notice = notice or (lambda _line: None)
        self.down_since: float | None = None
        self.retry_at = 0.0
        self.backoff = 1.0

    def dispatch(self, db: Database, app: Celery, settings: Settings, now: float) -> None:
        if now < self.retry_at:
            return
        try:
            dispatch_once(db, sender(app), settings)
        except BrokerUnavailable as exc:
            if self.down_since is None:
                self.down_since = now
                self.notice(f"{exc}; retrying (check that the broker is up)")
            self.retry_at = now + self.backoff
            self.backoff = min(BROKER_BACKOFF_CAP, self.backoff * 2)
            return
        if self.down_since is not None:
            self.notice(f"broker back after {now - self.down_since:.0f}s")
            self.down_since, self.backoff = None, 1.0


def follow(
    db: Database,
    app: Celery,
    settings: Settings,
    batch_id: int,
    *,
    on_progress: OnProgress | None = None,
    on_notice: OnNotice | None = None,
    stop: Callable[[], bool] = lambda: False,
    poll: float = 0.2,
    timeout: float | None = None,
) -> Summary:
    """Dispatch and watch until every job of the batch is terminal, only jobs of providers
    whose circuit is open remain (they stay pending for a later run), or ``stop()``."""
    started = time.monotonic()
    last_reconcile = 0.0
    broker = _Broker(on_notice)
    rates = _Rates()
    while True:
        lap = time.monotonic()
        if stop():
            return _final(db, batch_id, time.monotonic() - started, paused=True)
        broker.dispatch(db, app, settings, lap)
        if time.monotonic() - last_reconcile > RECONCILE_EVERY:
            reconcile_once(db, settings)
            last_reconcile = time.monotonic()
        asked = time.monotonic()
        progress = summary(db, batch_id, detail=False)
        # The pause scales with the progress queries alone: a dispatch that took seconds
        # (thousands of messages sent at once) must not put the follower to sleep for four
        # times as long, with the window left to run dry and the batch's end unnoticed.
        querying = time.monotonic() - asked
        if on_progress:
            now = time.monotonic()
            on_progress(_progress(progress, settings, rates, now - started, now))
        if progress.complete or progress.stalled:
            return _final(db, batch_id, time.monotonic() - started)
        if timeout is not None and time.monotonic() - started > timeout:
            raise TimeoutError(f"batch {batch_id} not finished after {timeout:.0f}s")
        time.sleep(pause(poll, querying))


def _final(db: Database, batch_id: int, followed: float, *, paused: bool = False) -> Summary:
    result = summary(db, batch_id)
    result.followed_seconds = followed
    result.paused = paused
    return result


def _no_worker_watch(app: Celery, notice: OnNotice) -> Callable[[], None]:
    """With a broker: a thread that asks the workers to answer and says so, once, when
    none does within NO_WORKER_AFTER seconds; the returned function stops it."""
    done = threading.Event()

    def watch() -> None:
        if done.wait(NO_WORKER_AFTER):
            return
        try:
            answers = app.control.ping(timeout=1.0)
        except Exception:  # the broker itself is down: the dispatcher reports that
            return
        if not answers and not done.is_set():
            notice("no vrec worker answers on the broker: start one with `vrec worker`")

    thread = threading.Thread(target=watch, name="vrec-no-worker-watch", daemon=True)
    thread.start()
    return done.set


def run_batch(
    settings: Settings,
    db: Database,
    batch_id: int,
    *,
    concurrency: int = 16,
    on_progress: OnProgress | None = None,
    on_notice: OnNotice | None = None,
) -> Summary:
    """Follow ``batch_id`` to the end; with no broker configured, a real Celery worker of
    ``concurrency`` threads in this process does the work (and its runtime is shut down
    afterwards). SIGINT/SIGTERM pause it (see the module docstring)."""
    app = make_app(settings)
    embedded = settings.broker_url is None
    interrupts = Interrupts()
    workers = (
        embedded_worker(app, concurrency=concurrency) if embedded else contextlib.nullcontext()
    )
    stop_watch = _nothing if embedded else _no_worker_watch(app, on_notice or _ignore)
    try:
        with interrupts.installed(), workers:
            result = follow(
                db,
                app,
                settings,
                batch_id,
                on_progress=on_progress,
                on_notice=on_notice,
                stop=lambda: interrupts.count > 0,
            )
            if result.paused:
                interrupts.on_second = _abort_calls
        if result.paused:
            _hand_back(db, embedded=embedded)
            result = _final(db, batch_id, result.followed_seconds, paused=True)
        return result
    finally:
        stop_watch()
        shutdown_runtime()


def _nothing() -> None:
    return None


def _ignore(_line: str) -> None:
    return None


def _abort_calls() -> None:
    runtime = current_runtime()
    if runtime is not None:
        runtime.abort_calls()


def _hand_back(db: Database, *, embedded: bool) -> None:
    """After a pause: this process's leases, and in embedded mode the queued jobs (their
    messages were in this process's memory), back to pending."""
    now = datetime.now(UTC)
    runtime = current_runtime()
    if runtime is not None:
        runtime.release_leases()
    if embedded:
        with db.transaction() as session:
            queue.unqueue(session, now)
