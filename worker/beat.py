"""Beat's scheduler: Celery's own, saying a broker outage once instead of a traceback per tick.

Celery's :class:`~celery.beat.Scheduler` logs every entry it could not send with its
whole stack (a dispatch every 2 s: dozens of tracebacks a minute while Redis restarts).
:class:`Scheduler` sends as Celery does; when the broker does not take a message it logs
one line naming the broker (without its password) the first time, keeps trying at every
tick, and one line when the broker is back. Nothing is lost by a skipped tick: dispatch,
reconcile and the schedules' check read what is due from the database each time.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import beat
from kombu.exceptions import OperationalError

from worker.fetch import redact_url

log = logging.getLogger("vrec.beat")


class Scheduler(beat.PersistentScheduler):  # type: ignore[misc]  # celery is untyped
    """Celery's persistent scheduler with one-line reports of a broker outage."""

    down_since: float | None = None

    def apply_entry(self, entry: beat.ScheduleEntry, producer: Any = None) -> None:
        beat.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)  # as Celery
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception as exc:  # as Celery does: a failed send must not stop beat
            cause = _cause(exc)
            if not isinstance(cause, OperationalError | ConnectionError | OSError):
                log.error(
                    "beat: could not send %s: %s: %s", entry.task, type(cause).__name__, cause
                )
                return
            if self.down_since is None:
                self.down_since = time.monotonic()
                broker = redact_url(str(self.app.conf.broker_url))
                log.error(
                    "beat: broker %s unreachable (%s); retrying at every tick "
                    "(check that the broker is up)",
                    broker,
                    type(cause).__name__,
                )
            return
        if self.down_since is not None:
            log.warning("beat: broker back after %.0fs", time.monotonic() - self.down_since)
            self.down_since = None


def _cause(exc: BaseException) -> BaseException:
    """What a SchedulingError wraps (Celery re-raises it over the send's own error)."""
    wrapped: BaseException = exc
    if isinstance(exc, beat.SchedulingError):
        wrapped = exc.__cause__ or exc.__context__ or exc
    return wrapped
