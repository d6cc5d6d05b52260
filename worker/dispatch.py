"""Moves due jobs from the database onto the broker, a window per provider at a time.

A provider's window is about ``rate x window_seconds`` jobs queued or running, so the
broker never holds a million messages and a job's retry waits in the database rather
than in a Celery ETA. Jobs are marked ``queued`` before their message is sent; if the
sender dies in between, the reconciler returns them to ``pending``.

A send that fails (the broker down or restarting) returns the jobs it would have carried
to pending at once and raises :class:`~worker.errors.BrokerUnavailable`: kombu's and
Redis's errors of sending are translated here.

Messages carry job ids only, in chunks (:func:`chunk`): a chunk's jobs are claimed and
finished in one transaction each and their vendor calls run concurrently on the worker's
event loop, so Celery's per-message cost and the database's per-commit cost are shared
by the chunk.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from celery import Celery
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from models import queue
from models.db import Database
from worker.app import QUEUE
from worker.config import Settings
from worker.errors import BrokerUnavailable
from worker.providers.base import rate_of
from worker.providers.registry import get_provider, names

TASK = "vrec.process_jobs"
# What sending to the broker raises when it is down or gone (kombu wraps most of it).
BROKER_ERRORS = (KombuOperationalError, RedisError, OSError)

MIN_WINDOW = 20
CHUNK_PER_RATE = 20.0  # requests/s per job id in a message; see chunk()


def chunk(rate: float, settings: Settings) -> int:
    """Job ids per message at ``rate``: one at vendor rates like 10/s, where the vendor is
    the bottleneck and many ids per message would only pile reservations up at the
    limiter; up to ``chunk_size`` at high rates, where Celery's and the database's
    per-message cost is what limits throughput."""
    return max(1, min(settings.chunk_size, int(rate / CHUNK_PER_RATE)))


def window(rate: float, settings: Settings) -> int:
    """Jobs queued or running at once for a provider at ``rate``: ``window_seconds`` of
    calls, but never more than the limiter would let wait (``limiter_max_wait_seconds``);
    a deeper window's tail would only be handed back by the limiter and dispatched again."""
    seconds = min(settings.window_seconds, settings.limiter_max_wait_seconds)
    return max(MIN_WINDOW, math.ceil(rate * seconds))


def send_jobs(app: Celery, job_ids: Sequence[int], chunk: int = 8) -> int:
    """Send ``job_ids`` in messages of at most ``chunk`` ids; how many messages."""
    chunks = [list(job_ids[i : i + chunk]) for i in range(0, len(job_ids), max(1, chunk))]
    with app.producer_or_acquire() as producer:
        for ids in chunks:
            app.send_task(TASK, args=[ids], queue=QUEUE, producer=producer)
    return len(chunks)


Send = Callable[[list[int], int], object]  # (one provider's job ids, ids per message)


def sender(app: Celery) -> Send:
    """What :func:`dispatch_once` calls to publish: :func:`send_jobs` through ``app``."""
    return lambda ids, size: send_jobs(app, ids, size)


def dispatch_once(db: Database, send: Send, settings: Settings, now: datetime | None = None) -> int:
    """Top up every provider's window; returns how many jobs were sent.

    ``send(ids, chunk)`` publishes one provider's ids, ``chunk`` ids per message.
    """
    now = now or datetime.now(UTC)
    with db.transaction() as session:
        credentials = {name: get_provider(name, settings).credential_id() for name in names()}
        queue.close_stale_circuits(session, credentials, now)
        plan: list[tuple[list[int], int]] = []
        for provider in queue.providers_due(session, now, names()):
            rate = rate_of(get_provider(provider, settings))
            room = window(rate, settings) - queue.in_flight(session, provider)
            ids = queue.mark_queued(session, provider, room, now)
            plan.append((ids, chunk(rate, settings)))
    for i, (ids, size) in enumerate(plan):  # a provider at a time: chunks don't mix them
        if not ids:
            continue
        try:
            send(ids, size)
        except BROKER_ERRORS as exc:
            # Jobs are queued only for messages actually sent: the rest go back at once
            # rather than waiting out VREC_QUEUED_TIMEOUT_SECONDS.
            unsent = [job for later, _ in plan[i:] for job in later]
            with db.transaction() as session:
                queue.unqueue_jobs(session, unsent, now)
            raise BrokerUnavailable(f"the broker did not take a message: {_reason(exc)}") from exc
    return sum(len(ids) for ids, _ in plan)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}" + (f": {text}" if text else "")


def reconcile_once(db: Database, settings: Settings, now: datetime | None = None) -> int:
    """Return lost work to pending (expired leases, queued messages that never arrived)."""
    with db.transaction() as session:
        return queue.reconcile(
            session, now or datetime.now(UTC), queued_timeout=settings.queued_timeout_seconds
        )
