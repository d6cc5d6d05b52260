"""What a worker reports of every run it finished: its metrics and one log line.

Called once per chunk after the outcomes are stored, so each job costs one pass here: the
vendor call (outcome, latency, billed, throttled), the error (category, vendor code), the
terminal status, and one line on the ``vrec.jobs`` logger: INFO for a run that decided
something (finished, retry, circuit), DEBUG for a job handed back unrun by the limiter.
The line carries ids, provider, status, outcome, vendor code, attempt and duration; never
a source path, a URL or a credential (error messages are built from vendor codes and
messages, see :mod:`worker.errors`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from models.jobs import ClaimedJob
from worker import metrics
from worker.errors import Outcome
from worker.jobrun import JobRun
from worker.lifecycle import Transition

log = logging.getLogger("vrec.jobs")
MAX_LOGGED_MESSAGE = 200


def report_runs(
    done: Sequence[tuple[ClaimedJob, JobRun, Transition]], written: Sequence[str | None]
) -> None:
    """Metrics and a log line for each run; ``written`` is each job's stored status
    (None: the lease was lost, so another worker owns the job and reports it)."""
    info = log.isEnabledFor(logging.INFO)
    for (claimed, run, transition), status in zip(done, written, strict=True):
        _count(claimed.provider, run)
        if status is None:
            continue
        if transition.terminal:
            metrics.job_finished(claimed.provider, status)
        if info or log.isEnabledFor(logging.DEBUG):
            _log(claimed, run, transition, status)


def _count(provider: str, run: JobRun) -> None:
    outcome = run.outcome
    if run.call is not None:
        called = (outcome or Outcome.TRANSIENT).value
        metrics.vendor_call(provider, called, run.call.duration_ms / 1000, billed=run.call.billed)
        if outcome is Outcome.RATE_LIMITED:
            metrics.throttled(provider)
    if run.error is not None:
        metrics.job_error(provider, run.error.category, run.error.vendor_code)
    elif run.give_back is not None:
        metrics.given_back(provider)


def _event(run: JobRun, transition: Transition) -> str:
    if transition.terminal:
        return "finished"
    if run.give_back is not None and run.error is None:
        return "given back"
    return "circuit open" if transition.circuit is not None else "retry"


def _code(run: JobRun) -> str | None:
    if run.error is not None:
        return run.error.vendor_code
    return run.answer.vendor_code if run.answer is not None else None


def _log(claimed: ClaimedJob, run: JobRun, transition: Transition, status: str) -> None:
    event = _event(run, transition)
    fields: dict[str, Any] = {
        "batch": claimed.batch_id,
        "job": claimed.job_id,
        "provider": claimed.provider,
        "status": status,
        "outcome": run.outcome.value if run.outcome else None,
        "code": _code(run),
        "attempt": transition.attempts,
        "duration_ms": round(run.call.duration_ms) if run.call else None,
    }
    if run.error is not None:
        fields["error"] = run.error.message[:MAX_LOGGED_MESSAGE]
    if run.give_back is not None:
        fields["retry_in_s"] = round(run.give_back, 1)
    level = logging.DEBUG if event == "given back" else logging.INFO
    log.log(level, "job %s", event, extra={"fields": fields})
