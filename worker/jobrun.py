"""What running one job produced, handed from the pipeline (no database) to the policy
that decides the job's next state and to storage, which writes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from worker.errors import JobError, Outcome
from worker.providers.base import VendorAnswer
from worker.sources import SourceFacts


@dataclass(frozen=True)
class CallFacts:
    """One vendor call, for the attempts table."""

    started_at: datetime
    duration_ms: float
    http_status: int | None
    vendor_code: str | None
    request_id: str | None
    billed: bool


@dataclass(frozen=True)
class JobRun:
    """The result of one pass of a job through the pipeline.

    Exactly one of ``answer`` (succeeded / no_result), ``error`` (a JobError) or
    ``give_back`` (seconds until the limiter has a slot; no call was made) is set.
    """

    answer: VendorAnswer | None = None
    error: JobError | None = None
    give_back: float | None = None
    call: CallFacts | None = None  # None when no vendor call was made
    source: SourceFacts | None = None

    @property
    def outcome(self) -> Outcome | None:
        if self.answer is not None:
            return self.answer.outcome
        if self.error is not None:
            return self.error.outcome
        return None
