"""Registering a batch: every image under the given sources, one job per image x provider,
answers already paid for reused (unless forced), idempotent by a producer's key."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError

from models import reports
from models.batches import create_batch
from models.db import Database
from worker import ingest
from worker.config import Settings
from worker.errors import ConfigError, UsageError
from worker.providers.base import check_options
from worker.providers.registry import get_provider, provider_class
from worker.sources import Source


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


def missing_credentials(settings: Settings, providers: Sequence[str]) -> dict[str, str]:
    """provider -> what to set, for each of ``providers`` with no credentials here."""
    missing = {}
    for name in providers:
        try:
            get_provider(name, settings).require_credentials()
        except ConfigError as exc:
            missing[name] = str(exc)
    return missing


def check_credentials(settings: Settings, providers: Sequence[str]) -> None:
    """ConfigError naming what to set, when this process is the one calling the vendors
    (embedded mode) and a chosen provider has no credentials: checked before anything is
    registered. With a broker, the workers' environment is what counts."""
    if settings.broker_url is not None:
        return
    missing = missing_credentials(settings, providers)
    if missing:
        raise ConfigError(next(iter(missing.values())))


def reuse_age(settings: Settings, *, force: bool) -> timedelta | None:
    """How old an answer may be to be reused; None: call the vendor for every job."""
    if force or settings.reuse_max_age_days <= 0:
        return None
    return timedelta(days=settings.reuse_max_age_days)


class _Counted(Iterator[Source]):
    """An iterator that counts what it hands out."""

    def __init__(self, inner: Iterator[Source]) -> None:
        self.inner = inner
        self.count = 0

    def __next__(self) -> Source:
        item = next(self.inner)
        self.count += 1
        return item


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
    check_credentials(settings, providers)
    if idempotency_key is not None:
        existing = batch_by_key(db, idempotency_key)
        if existing is not None:
            return existing
    seen = _Counted(ingest.entries(sources, ingest.Intake.of(settings)))
    try:
        with db.transaction() as session:
            batch = create_batch(
                session,
                seen,
                per_provider,
                label=label,
                sources=[ingest.stored_source(s) for s in sources],
                idempotency_key=idempotency_key,
                reuse_max_age=reuse_age(settings, force=force),
                now=datetime.now(UTC),
            )
            if not seen.count:  # nothing to do: refuse, and keep nothing (rolled back)
                raise UsageError(f"no image found in {', '.join(sources)}")
            return batch.id
    except IntegrityError:
        existing = batch_by_key(db, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return existing
