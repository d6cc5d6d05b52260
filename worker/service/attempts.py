"""The attempts journal: every vendor call written down before its request is sent.

The pipeline calls :meth:`AttemptJournal.calling` between the limiter's slot and the
request; the row (outcome ``in_flight``) is committed before the call goes out, then
completed with the answer by :func:`models.jobs.finish_many`. A worker killed while the
vendor works leaves the row behind, and the reconciler (or the stopping worker itself)
marks it ``lost``: the attempts table counts every call the vendor saw.

SQLAlchemy's errors of that write are translated here into
:class:`~worker.errors.CallNotRecorded`, and the call is not made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from models import jobs
from models.db import Database
from worker.errors import CallNotRecorded


class AttemptJournal:
    """A chunk's calls, written down one by one as each is about to be sent.

    ``ids`` maps each job that called to its attempt row, for :func:`finish_many`.
    """

    def __init__(self, db: Database, claimed: Sequence[jobs.ClaimedJob], worker: str) -> None:
        self._db = db
        self._claimed = claimed
        self._worker = worker
        self.ids: dict[int, int] = {}

    async def calling(self, index: int, started_at: datetime) -> None:
        claimed = self._claimed[index]
        # Off the event loop: a commit takes milliseconds, and other callers' slots are due.
        self.ids[claimed.job_id] = await asyncio.to_thread(self._write, claimed, started_at)

    def _write(self, claimed: jobs.ClaimedJob, started_at: datetime) -> int:
        try:
            with self._db.transaction() as session:
                return jobs.start_attempt(
                    session, claimed, started_at=started_at, worker=self._worker
                )
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).splitlines() or [""]
            reason = f"{type(exc).__name__}: {detail[0][:200]}"
            raise CallNotRecorded(claimed.provider, reason) from exc
