"""Moves due jobs from the database onto the broker, a window per provider at a time.

A provider's window is about ``rate x window_seconds`` jobs queued or running, so the
broker never holds a million messages and a job's retry waits in the database rather
than in a Celery ETA. Jobs are marked ``queued`` before their message is sent; if the
sender dies in between, the reconciler returns them to ``pending``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from models import queue
from models.db import transaction
from worker.config import Settings
from worker.providers.base import rate_of
from worker.providers.registry import get_provider, names

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


def dispatch_once(
    sessions: sessionmaker[Session],
    send: Callable[[list[int], int], object],
    settings: Settings,
    now: datetime | None = None,
) -> int:
    """Top up every provider's window; returns how many jobs were sent.

    ``send(ids, chunk)`` publishes one provider's ids, ``chunk`` ids per message.
    """
    now = now or datetime.now(UTC)
    with transaction(sessions) as session:
        plan: list[tuple[list[int], int]] = []
        for provider in queue.providers_due(session, now, names()):
            rate = rate_of(get_provider(provider, settings))
            room = window(rate, settings) - queue.in_flight(session, provider)
            ids = queue.mark_queued(session, provider, room, now)
            plan.append((ids, chunk(rate, settings)))
    for ids, size in plan:  # one provider's jobs at a time, so chunks don't mix providers
        if ids:
            send(ids, size)
    return sum(len(ids) for ids, _ in plan)


def reconcile_once(
    sessions: sessionmaker[Session], settings: Settings, now: datetime | None = None
) -> int:
    with transaction(sessions) as session:
        return queue.reconcile(
            session, now or datetime.now(UTC), queued_timeout=settings.queued_timeout_seconds
        )
