"""A job's states and the moves between them. A job is one image x one provider x
options; its life::

    pending --dispatch--> queued --claim--> running --finish--> succeeded | no_result
       ^  |                  |                 |                | invalid_image | failed
       |  +---- cancel ------+---------------------------------> cancelled
       +---- retry (not_before) / give-back ---+
       +---- reconciler: lease expired, or queued message lost
       +---- `vrec retry`: chosen terminal jobs, with a fresh retry budget

A job whose image already has a paid answer from the same provider with the same options
is created terminal at once, reusing that answer (no vendor call).

:mod:`worker.policy` decides where a finished run goes (a :class:`Transition`);
:mod:`models.jobs` writes it. The database is the source of truth; the broker only
carries job ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from worker.errors import JobError


class JobStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    NO_RESULT = "no_result"
    INVALID_IMAGE = "invalid_image"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Statuses of jobs that still need a worker: a batch with any of them is not done.
ACTIVE: Final = (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING)
TERMINAL: Final = tuple(s for s in JobStatus if s not in ACTIVE)
# Outcomes of an attempt row besides a call's Outcome: written before the request is sent,
# and, when the worker stopped before the answer was written, lost (billing unknown).
IN_FLIGHT: Final = "in_flight"
LOST: Final = "lost"
MAX_ERROR_MESSAGE = 2000  # characters kept of an error's message (provider and code have columns)


@dataclass(frozen=True)
class ErrorFacts:
    """The error a job records: category (its outcome), vendor code and message."""

    category: str
    code: str | None
    message: str

    @classmethod
    def of(cls, error: JobError) -> ErrorFacts:
        return cls(error.category, error.vendor_code, error.message[:MAX_ERROR_MESSAGE])


@dataclass(frozen=True)
class CircuitOpening:
    """A provider to stop calling from ``at`` until ``until``, and why."""

    provider: str
    at: datetime
    until: datetime
    code: str | None
    message: str
    credential_id: str | None = None  # which credential the vendor refused


@dataclass(frozen=True)
class Transition:
    """A job's next state. ``error`` None clears the recorded error unless ``keep_error``."""

    status: JobStatus
    attempts: int
    retries: int
    not_before: datetime | None = None
    error: ErrorFacts | None = None
    keep_error: bool = False
    circuit: CircuitOpening | None = None

    @property
    def terminal(self) -> bool:
        return self.status not in ACTIVE
