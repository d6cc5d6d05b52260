"""Retry policy: reads an error's attributes, never its type.

* not retryable (invalid image, provider unavailable): no retry here; the caller decides
  what terminal or circuit state follows from ``error.outcome``.
* retryable: capped exponential backoff with full jitter, or the vendor's own
  ``retry_after`` hint when it gave one; give up after ``max_attempts`` failures of that
  kind. Throttling is the vendor pacing us, not the job failing, so it gets four times
  the budget before the job fails.
"""

from __future__ import annotations

import random

from worker.config import Settings
from worker.errors import JobError, Outcome

RATE_LIMITED_BUDGET_FACTOR = 4


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
