"""Registering a batch: every image under the given sources, one job per image x provider,
answers already paid for reused (unless forced), idempotent by a producer's key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError

from models import reports
from models.batches import create_batch
from models.db import Database
from worker import ingest
from worker.config import Settings
from worker.errors import ConfigError
from worker.providers.base import check_options
from worker.providers.registry import provider_class


def job_options(providers: Sequence[str], options: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Each provider's options: an option goes to the providers that know it; one that no
    chosen provider knows is a ConfigError, as is an unknown provider."""
    if not providers:
        raise ConfigError("no provider chosen: name one with -p/--provider")
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


def reuse_age(settings: Settings, *, force: bool) -> timedelta | None:
    """How old an answer may be to be reused; None: call the vendor for every job."""
    if force or settings.reuse_max_age_days <= 0:
        return None
    return timedelta(days=settings.reuse_max_age_days)


def batch_by_key(db: Database, key: str) -> int | None:
    """The batch a producer's idempotency key created, if any."""
    with db.transaction() as session:
        found = reports.batches(session, key=key)
        return found[0].id if found else None


def submit(
    db: Database,
    settings: Settings,
    sources: Sequence[str],
    providers: Sequence[str],
    options: Mapping[str, str],
    *,
    label: str | None = None,
    force: bool = False,
    idempotency_key: str | None = None,
) -> int:
    """Register every image under ``sources`` and create its jobs; the new batch's id.

    With ``idempotency_key``, the same key always yields the same batch: a key already used
    returns its batch without registering anything, also when two producers send it at
    once (the key is unique in the database; the loser of the race finds the winner's).
    """
    per_provider = job_options(providers, options)
    if idempotency_key is not None:
        existing = batch_by_key(db, idempotency_key)
        if existing is not None:
            return existing
    try:
        with db.transaction() as session:
            batch = create_batch(
                session,
                ingest.entries(sources),
                per_provider,
                label=label,
                sources=list(sources),
                idempotency_key=idempotency_key,
                reuse_max_age=reuse_age(settings, force=force),
                now=datetime.now(UTC),
            )
            return batch.id
    except IntegrityError:
        existing = batch_by_key(db, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return existing
