"""Submitting batches from other programs: a Python function, and a Celery task for
producers that have only the broker.

Python::

    from worker.service.producer import submit, batch_for_key
    batch_id = submit(["/data/2026-12-01/"], ["tencent_vehicle_license"],
                      {"card_side": "FRONT"}, label="daily", idempotency_key="daily-2026-12-01")

Celery (sources must be visible to the workers: shared paths, URLs, manifests)::

    app.send_task("vrec.submit", kwargs={"sources": [...], "providers": [...],
                  "options": {...}, "label": "...", "idempotency_key": "..."})

The same key always yields the same batch, also for concurrent sends; find it by key with
:func:`batch_for_key` or ``vrec batches --key KEY``. Registration creates the jobs; beat
and the workers (or ``vrec wait BATCH``) process them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from models.db import Database
from worker.config import Settings
from worker.service.database import open_database
from worker.service.submit import batch_by_key
from worker.service.submit import submit as submit_to
from worker.settings import get_settings


def submit(
    sources: Sequence[str],
    providers: Sequence[str],
    options: Mapping[str, str] | None = None,
    *,
    label: str | None = None,
    idempotency_key: str | None = None,
    force: bool = False,
    settings: Settings | None = None,
) -> int:
    """Register a batch (see the module docstring); its id."""
    settings = settings or get_settings()
    with open_database(settings) as db:
        return submit_with(
            db,
            settings,
            sources,
            providers,
            options or {},
            label=label,
            idempotency_key=idempotency_key,
            force=force,
        )


def submit_with(
    db: Database,
    settings: Settings,
    sources: Sequence[str],
    providers: Sequence[str],
    options: Mapping[str, str],
    *,
    label: str | None = None,
    idempotency_key: str | None = None,
    force: bool = False,
) -> int:
    """:func:`submit` on an open database (what the Celery task does on its runtime's)."""
    return submit_to(
        db,
        settings,
        sources,
        providers,
        options,
        label=label,
        force=force,
        idempotency_key=idempotency_key,
    )


def batch_for_key(key: str, *, settings: Settings | None = None) -> int | None:
    """The batch an idempotency key created, or None."""
    with open_database(settings or get_settings()) as db:
        return batch_by_key(db, key)
