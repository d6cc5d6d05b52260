"""The attempts journal: every vendor call written down before its request is sent.

The pipeline calls :meth:`AttemptJournal.calling` as the call's limiter slot comes due
(before the slot's lateness check, so the commit's time counts as lateness); the row
(outcome ``in_flight``) is committed before the call goes out, then completed with the
answer by :func:`models.jobs.finish`. A worker killed while the vendor works leaves
the row behind, and the reconciler (or the stopping worker itself) marks it ``lost``: the
attempts table counts every call the vendor saw. A slot forfeited after the write (the
commit made the call late) has its row withdrawn (:meth:`AttemptJournal.withdraw`)
before any wait longer than the limiter's margin, so a worker killed in that wait leaves
no row (a next slot within the margin keeps the row: see ``AtSlot``).

On PostgreSQL the rows are written from the loop itself (:mod:`models.loop_attempts`,
given as ``rows``: no thread hop inside the slot's lateness budget); elsewhere through
SQLAlchemy on an executor thread. Either driver's errors of either write are translated
here into :class:`~worker.errors.CallNotRecorded`, and the call is not made.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime

import psycopg
from sqlalchemy.exc import SQLAlchemyError

from models import jobs
from models.db import Database
from models.loop_attempts import LoopAttempts
from worker.errors import CallNotRecorded


class AttemptJournal:
    """A chunk's calls, written down one by one as each is about to be sent (and withdrawn
    if its slot is then forfeited).

    ``ids`` maps each job that called to its attempt row, for :func:`models.jobs.finish`.
    """

    def __init__(
        self,
        db: Database,
        claimed: Sequence[jobs.ClaimedJob],
        worker: str,
        rows: LoopAttempts | None = None,
    ) -> None:
        self._db = db
        self._claimed = claimed
        self._worker = worker
        self._rows = rows
        self.ids: dict[int, int] = {}

    async def calling(self, index: int, started_at: datetime) -> None:
        claimed = self._claimed[index]
        if self._rows is None:
            # Off the event loop: a blocking commit would hold up other callers' slots.
            self.ids[claimed.job_id] = await asyncio.to_thread(self._write, claimed, started_at)
            return
        with _translated(claimed, ""):
            row = jobs.in_flight_row(claimed, started_at, self._worker)
            self.ids[claimed.job_id] = await self._rows.start(row)

    async def withdraw(self, index: int) -> None:
        claimed = self._claimed[index]
        # The id stays until the delete is committed: a row left standing goes with the
        # job's outcome (finishing removes the row of a job that made no call).
        attempt_id = self.ids[claimed.job_id]
        if self._rows is None:
            await asyncio.to_thread(self._withdraw, claimed, attempt_id)
        else:
            with _translated(claimed, "withdrawing a forfeited slot's row: "):
                await self._rows.withdraw(attempt_id)
        del self.ids[claimed.job_id]

    def _write(self, claimed: jobs.ClaimedJob, started_at: datetime) -> int:
        with _translated(claimed, ""), self._db.autocommit() as conn:
            return jobs.start_attempt(conn, claimed, started_at=started_at, worker=self._worker)

    def _withdraw(self, claimed: jobs.ClaimedJob, attempt_id: int) -> None:
        with (
            _translated(claimed, "withdrawing a forfeited slot's row: "),
            self._db.autocommit() as conn,
        ):
            jobs.withdraw_attempt(conn, attempt_id)


@contextlib.contextmanager
def _translated(claimed: jobs.ClaimedJob, doing: str) -> Iterator[None]:
    try:
        yield
    except (SQLAlchemyError, psycopg.Error) as exc:
        detail = str(getattr(exc, "orig", None) or exc).splitlines() or [""]
        reason = f"{doing}{type(exc).__name__}: {detail[0][:200]}"
        raise CallNotRecorded(claimed.provider, reason) from exc
