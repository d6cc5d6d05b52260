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
from worker.providers.registry import get_provider

MIN_WINDOW = 20


def window(provider: str, settings: Settings) -> int:
    return max(
        MIN_WINDOW, math.ceil(rate_of(get_provider(provider, settings)) * settings.window_seconds)
    )


def dispatch_once(
    sessions: sessionmaker[Session],
    send: Callable[[list[int]], object],
    settings: Settings,
    now: datetime | None = None,
) -> int:
    """Top up every provider's window; returns how many jobs were sent."""
    now = now or datetime.now(UTC)
    with transaction(sessions) as session:
        plan: list[list[int]] = []
        for provider in queue.providers_due(session, now):
            room = window(provider, settings) - queue.in_flight(session, provider)
            plan.append(queue.mark_queued(session, provider, room, now))
    for ids in plan:  # one provider's jobs at a time, so chunks don't mix providers
        if ids:
            send(ids)
    return sum(len(ids) for ids in plan)


def reconcile_once(
    sessions: sessionmaker[Session], settings: Settings, now: datetime | None = None
) -> int:
    with transaction(sessions) as session:
        return queue.reconcile(
            session, now or datetime.now(UTC), queued_timeout=settings.queued_timeout_seconds
        )
