"""Where a job goes after a run: the one place that decides (storage only writes it).

:func:`next_state` reads the run (answer, error or limiter give-back) and the job's counts
so far, never an error's type, only its attributes:

* an answer (succeeded / no_result): terminal with that status, errors cleared;
* a give-back (the limiter had no slot soon enough, no call made): back to pending
  until the slot, nothing charged, the last error kept;
* ``invalid_image``: terminal;
* ``provider_unavailable`` (credentials or account wrong): back to pending, and the
  provider's circuit opens for ``circuit_cooldown_seconds``, so nobody calls (or pays)
  until it is fixed; the job is not charged a retry. The circuit remembers which credential
  (its non-secret id) was refused, so configuring another one closes it. No credentials
  on the worker at all is a configuration error, not the vendor's verdict: the job waits
  the cooldown with the reason recorded, and no circuit opens;
* retryable (transient, rate_limited): capped exponential backoff with full jitter, or
  the vendor's own ``retry_after`` hint; after ``max_attempts`` failures of that kind the
  job fails with the last error kept. Throttling is the vendor pacing us, not the job
  failing, so it gets four times the budget.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from worker.config import Settings
from worker.errors import JobError, Outcome
from worker.jobrun import JobRun
from worker.lifecycle import CircuitOpening, ErrorFacts, JobStatus, Transition

RATE_LIMITED_BUDGET_FACTOR = 4


@dataclass(frozen=True)
class JobBefore:
    """The job as it was before this run: its provider and what it had used."""

    provider: str
    attempts: int  # vendor calls made
    retries: int  # retryable failures
    credential_id: str | None = None  # the credential this run used (non-secret id)


def next_state(
    run: JobRun,
    job: JobBefore,
    settings: Settings,
    now: datetime,
    rng: random.Random | None = None,
) -> Transition:
    """The state of ``job`` after ``run``."""
    attempts = job.attempts + (run.call is not None)
    if run.answer is not None:
        return Transition(JobStatus(run.answer.outcome.value), attempts, job.retries)
    if run.error is None:  # the limiter had no slot soon enough: no call was made
        later = now + timedelta(seconds=run.give_back or 0.0)
        return Transition(JobStatus.PENDING, attempts, job.retries, later, keep_error=True)
    error = run.error
    facts = ErrorFacts.of(error)
    if error.outcome is Outcome.INVALID_IMAGE:
        return Transition(JobStatus.INVALID_IMAGE, attempts, job.retries, error=facts)
    if error.outcome is Outcome.PROVIDER_UNAVAILABLE:
        until = now + timedelta(seconds=settings.circuit_cooldown_seconds)
        if not getattr(error, "opens_circuit", True):  # not configured here: wait, no circuit
            return Transition(JobStatus.PENDING, attempts, job.retries, until, error=facts)
        circuit = CircuitOpening(
            job.provider, now, until, error.vendor_code, error.message, job.credential_id
        )
        return Transition(JobStatus.PENDING, attempts, job.retries, error=facts, circuit=circuit)
    retries = job.retries + 1
    delay = retry_delay(error, retries, settings, rng)
    if delay is None:
        return Transition(JobStatus.FAILED, attempts, retries, error=facts)
    later = now + timedelta(seconds=delay)
    return Transition(JobStatus.PENDING, attempts, retries, later, error=facts)


def retry_delay(
    error: JobError, failures: int, settings: Settings, rng: random.Random | None = None
) -> float | None:
    """Seconds until the next try after ``failures`` failures like ``error``; None: give up."""
    if not error.retryable:
        return None
    budget = settings.max_attempts
    if error.outcome is Outcome.RATE_LIMITED:
        budget *= RATE_LIMITED_BUDGET_FACTOR
    if failures >= budget:
        return None
    if error.retry_after is not None:
        return min(error.retry_after, settings.backoff_cap_seconds)
    ceiling = min(settings.backoff_cap_seconds, settings.backoff_base_seconds * 2 ** (failures - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)
