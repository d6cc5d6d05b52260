"""models.loop_attempts on PostgreSQL: the rows it writes from an event loop are the rows
models.jobs.start_attempt writes, withdrawals remove them, and a connection the server
drops fails one write and is reopened for the next."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import select, text

from models import Attempt, Job, jobs, queue
from models.batches import create_batch
from models.db import Database
from models.loop_attempts import APPLICATION_NAME, LoopAttempts
from tests.support.services import truncate
from tests.support.storage import source

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
P = "tencent_vehicle_license"


@pytest.fixture
def db(postgres_url: str) -> Iterator[Database]:
    truncate(postgres_url)
    with Database(postgres_url) as database:
        yield database


def _claimed(db: Database, n: int) -> list[jobs.ClaimedJob]:
    entries = [source(uri=f"/img/{i}.jpg", sha256=f"{i:064x}", size=9) for i in range(n)]
    with db.transaction() as s:
        batch = create_batch(s, entries, {P: {}}, label="t")
        queue.mark_queued(s, P, n, NOW)
        ids = list(s.scalars(select(Job.id).where(Job.batch_id == batch.id).order_by(Job.id)))
    with db.autocommit() as conn:
        return jobs.claim_many(conn, ids, owner="w", now=NOW, lease_seconds=60)


def _row(db: Database, attempt_id: int) -> dict[str, Any]:
    with db.transaction() as s:
        row = s.get_one(Attempt, attempt_id)
        skip = ("_sa_instance_state", "id", "job_id")
        return {k: v for k, v in vars(row).items() if k not in skip}


def _start(rows: LoopAttempts, claimed: jobs.ClaimedJob) -> Awaitable[int]:
    return rows.start(jobs.in_flight_row(claimed, NOW, "w"))


def test_rows_from_the_loop_are_the_rows_start_attempt_writes(db: Database) -> None:
    mine, reference = _claimed(db, 2)
    rows = LoopAttempts(db.url)

    async def main() -> tuple[int, int]:
        try:
            first = await _start(rows, mine)
            second = await _start(rows, mine)
            await rows.withdraw(second)
            return first, second
        finally:
            await rows.aclose()

    first, second = asyncio.run(main())
    with db.autocommit() as conn:
        expected = jobs.start_attempt(conn, reference, started_at=NOW, worker="w")
    assert _row(db, first) == _row(db, expected)
    assert _row(db, first)["outcome"] == "in_flight"
    with db.transaction() as s:  # committed, and the withdrawn row is gone
        assert sorted(s.scalars(select(Attempt.id))) == sorted([first, expected])
    assert second not in (first, expected)


def test_a_dropped_connection_fails_one_write_and_the_next_reconnects(db: Database) -> None:
    (claimed,) = _claimed(db, 1)
    rows = LoopAttempts(db.url)

    async def main() -> list[str]:
        seen = []
        try:
            await _start(rows, claimed)
            with db.autocommit() as conn:  # the server ends the session, as a restart does
                ended = conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND application_name = :name"
                    ),
                    {"name": APPLICATION_NAME},
                ).scalars()
                assert list(ended) == [True]
            for _ in range(2):
                try:
                    await _start(rows, claimed)
                    seen.append("written")
                except psycopg.OperationalError:
                    seen.append("failed")
            return seen
        finally:
            await rows.aclose()

    assert asyncio.run(main()) == ["failed", "written"]
    with db.transaction() as s:
        assert len(s.scalars(select(Attempt.id)).all()) == 2
