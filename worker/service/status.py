"""Where a batch, or the whole queue, stands; and closing a provider's circuit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from models import queue, reports
from models.core import ProviderState
from models.db import Database
from worker.lifecycle import ACTIVE, JobStatus


@dataclass
class Summary:
    batch_id: int
    by_provider: dict[str, dict[str, int]]  # provider -> status -> jobs
    blocked: list[ProviderState] = field(default_factory=list)  # providers with open circuits
    errors: list[reports.ErrorCount] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)
    reused: dict[str, int] = field(default_factory=dict)  # provider -> answers reused
    seconds: float = 0.0  # the batch's duration: from its creation to its last finished job
    followed_seconds: float = 0.0  # how long this process followed it
    paused: bool = False  # the follower was interrupted; `vrec wait` resumes it

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


@dataclass
class ProviderProgress:
    done: int
    total: int
    rate: float  # jobs finished per second over the last RATE_WINDOW
    eta_seconds: float | None


@dataclass
class Progress:
    """Where a followed batch stands, each round: per provider, and overall."""

    batch_id: int
    elapsed: float
    counts: dict[str, int]
    providers: dict[str, ProviderProgress] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return sum(p.done for p in self.providers.values())

    @property
    def total(self) -> int:
        return sum(p.total for p in self.providers.values())

    @property
    def eta_seconds(self) -> float | None:
        etas = [p.eta_seconds for p in self.providers.values() if p.eta_seconds is not None]
        return max(etas) if etas else None


def summary(db: Database, batch_id: int, *, detail: bool = True) -> Summary:
    """Where a batch stands; with ``detail``, also its commonest errors and invalid files
    (left out while polling for progress)."""
    now = datetime.now(UTC)
    with db.transaction() as session:
        by_provider = reports.counts_by_provider(session, batch_id)
        result = Summary(
            batch_id=batch_id,
            by_provider=by_provider,
            blocked=[s for s in reports.open_circuits(session, now) if s.provider in by_provider],
        )
        if detail:
            created, last = reports.batch_span(session, batch_id)
            end = last if last is not None and result.complete else now
            result.seconds = max(0.0, (end - created).total_seconds())
            result.errors = reports.common_errors(session, batch_id)
            result.invalid = reports.invalid_files(session, batch_id)
            calls = reports.calls_by_provider(session, [batch_id])[batch_id]
            result.reused = {p: c.reused for p, c in calls.items() if c.reused}
        return result


@dataclass
class QueueStatus:
    """Every job by provider and status, and the providers whose circuit is open."""

    by_provider: dict[str, dict[str, int]]
    open_circuits: list[ProviderState]


def queue_status(db: Database) -> QueueStatus:
    with db.transaction() as session:
        return QueueStatus(
            by_provider=reports.counts_by_provider(session),
            open_circuits=reports.open_circuits(session, datetime.now(UTC)),
        )


def resume(db: Database, provider: str) -> bool:
    """Close ``provider``'s circuit (after its credentials are fixed); False if it was not
    open. Its pending jobs run again at the next dispatch."""
    with db.transaction() as session:
        return queue.reset_circuit(session, provider)
