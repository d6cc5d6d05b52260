"""Working on batches after they ran: list them, look at one, retry, cancel, prune.

Every function takes an open :class:`~models.db.Database` and returns plain data that
:mod:`worker.render` prints or turns into JSON. An unknown batch id is
:class:`~worker.errors.NotFound`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from models import operations, reports
from models.core import Batch, ProviderState
from models.db import Database
from worker.config import Settings
from worker.errors import NotFound, UsageError
from worker.lifecycle import ACTIVE, JobStatus
from worker.providers.base import rate_of
from worker.providers.registry import get_provider

RATE_WINDOW = timedelta(seconds=60)  # how far back "jobs per second" looks


@dataclass
class BatchOverview:
    """One line of ``vrec batches``."""

    batch_id: int
    label: str | None
    created_at: datetime
    by_provider: dict[str, dict[str, int]]  # provider -> status -> jobs
    calls: dict[str, reports.Calls]  # provider -> its calls

    @property
    def counts(self) -> dict[str, int]:
        return reports.totals(self.by_provider)

    @property
    def active(self) -> bool:
        return any(self.counts.get(s, 0) for s in ACTIVE)

    @property
    def total_calls(self) -> reports.Calls:
        return reports.total_calls(self.calls.values())


def list_batches(
    db: Database,
    *,
    since: datetime | None = None,
    label: str | None = None,
    key: str | None = None,
    limit: int | None = 50,
) -> list[BatchOverview]:
    """Batches newest first, with their jobs by status and their calls."""
    with db.transaction() as session:
        found = reports.batches(session, since=since, label=label, key=key, limit=limit)
        ids = [b.id for b in found]
        counts = reports.counts_by_batch(session, ids)
        calls = reports.calls_by_provider(session, ids)
        return [
            BatchOverview(b.id, b.label, b.created_at, counts[b.id], calls[b.id]) for b in found
        ]


@dataclass
class ProviderProgress:
    """One provider's part of a batch: where its jobs are, how fast, how long still."""

    provider: str
    counts: dict[str, int]
    calls: reports.Calls
    rate: float  # jobs finished per second over the last RATE_WINDOW
    configured_rate: float  # the provider's calls/s, shared by all workers
    circuit: ProviderState | None = None

    @property
    def remaining(self) -> int:
        return sum(self.counts.get(s, 0) for s in ACTIVE)

    @property
    def done(self) -> int:
        return sum(self.counts.values()) - self.remaining

    @property
    def eta_seconds(self) -> float | None:
        """Remaining jobs at the provider's rate (the vendor is the bottleneck); None when
        nothing is left, or the circuit is open (nothing moves until it closes)."""
        if not self.remaining or self.circuit is not None:
            return None
        return self.remaining / self.configured_rate


@dataclass
class BatchDetail:
    """``vrec status BATCH``."""

    batch_id: int
    label: str | None
    created_at: datetime
    providers: list[ProviderProgress]
    errors: list[reports.CodeCount] = field(default_factory=list)

    @property
    def eta_seconds(self) -> float | None:
        etas = [p.eta_seconds for p in self.providers if p.eta_seconds is not None]
        return max(etas) if etas else None


def get_batch(session: Session, batch_id: int) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id} (see `vrec batches`)")
    return batch


def batch_detail(db: Database, settings: Settings, batch_id: int) -> BatchDetail:
    now = datetime.now(UTC)
    with db.transaction() as session:
        batch = get_batch(session, batch_id)
        counts = reports.counts_by_provider(session, batch_id)
        calls = reports.calls_by_provider(session, [batch_id])[batch_id]
        recent = reports.finished_since(session, batch_id, now - RATE_WINDOW)
        circuits = {s.provider: s for s in reports.open_circuits(session, now)}
        providers = [
            ProviderProgress(
                provider=name,
                counts=per,
                calls=calls.get(name, reports.Calls()),
                rate=recent.get(name, 0) / RATE_WINDOW.total_seconds(),
                configured_rate=rate_of(get_provider(name, settings)),
                circuit=circuits.get(name),
            )
            for name, per in counts.items()
        ]
        errors = reports.errors_by_code(session, batch_id)
        return BatchDetail(batch.id, batch.label, batch.created_at, providers, errors)


DEFAULT_RETRY = (JobStatus.FAILED,)


def retry(
    db: Database,
    batch_id: int,
    *,
    statuses: Sequence[str] = DEFAULT_RETRY,
    provider: str | None = None,
    code: str | None = None,
) -> int:
    """Put the batch's chosen terminal jobs back to pending with a fresh retry budget
    (attempt history kept); how many. ``vrec wait`` (or beat) then runs them."""
    wrong = [s for s in statuses if s not in operations.RETRYABLE]
    if wrong:
        allowed = ", ".join(operations.RETRYABLE)
        raise UsageError(f"cannot retry status {wrong[0]!r}: one of {allowed}")
    with db.transaction() as session:
        get_batch(session, batch_id)
        _known_provider(session, batch_id, provider)
        _known_code(session, batch_id, code)
        return operations.retry(
            session,
            batch_id,
            statuses=statuses,
            provider=provider,
            code=code,
            now=datetime.now(UTC),
        )


def _known_provider(session: Session, batch_id: int, provider: str | None) -> None:
    if provider is None:
        return
    providers = reports.counts_by_provider(session, batch_id)
    if provider not in providers:
        shown = ", ".join(providers) or "none"
        raise NotFound(f"batch {batch_id} has no jobs for provider {provider!r} ({shown})")


def _known_code(session: Session, batch_id: int, code: str | None) -> None:
    if code is None:
        return
    codes = {c.code for c in reports.errors_by_code(session, batch_id)}
    if code not in codes:
        shown = ", ".join(sorted(c for c in codes if c)) or "none"
        raise NotFound(f"no job of batch {batch_id} ended with vendor code {code!r} ({shown})")


def cancel(db: Database, batch_id: int) -> int:
    """Cancel the batch's pending and queued jobs; how many (running ones finish)."""
    with db.transaction() as session:
        get_batch(session, batch_id)
        return operations.cancel(session, batch_id, now=datetime.now(UTC))


def prune(db: Database, *, before: datetime, dry_run: bool = False) -> operations.Pruned:
    """Remove batches created before ``before`` and what only they refer to."""
    with db.transaction() as session:
        return operations.prune(session, before=before, dry_run=dry_run)
