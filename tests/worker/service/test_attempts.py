"""The attempts journal in the limiter's wait, on SQLite and PostgreSQL (rows written on
an executor thread, and on PostgreSQL also from the loop itself, as workers do), with the
real limiter and the simulator: a slot lost to a slow commit leaves no row while its call
waits for the next slot, and the call made then has exactly one."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from models import Attempt, Job, jobs
from models.batches import create_batch
from models.db import Database
from models.loop_attempts import LoopAttempts
from tests.support.services import EXACT_SIMULATOR, truncate
from tests.support.storage import claim_one, source
from worker.errors import CallNotRecorded
from worker.pipeline import JournalPlace, Ready, call_job, prepare_job
from worker.providers.registry import get_provider
from worker.ratelimit import LocalLimiter
from worker.service.attempts import AttemptJournal
from worker.settings import settings_from_env
from worker.simulator.environment import made_up_credentials, point_at
from worker.simulator.samples import licence_page
from worker.simulator.server import SimulatorThread

P = "tencent_vehicle_license"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _claimed_job(db: Database) -> jobs.ClaimedJob:
    with db.transaction() as s:
        batch = create_batch(s, [source(uri="/img/0.jpg", sha256=f"{0:064x}", size=1)], {P: {}})
        job_id = s.scalars(select(Job.id).where(Job.batch_id == batch.id)).one()
    with db.transaction() as s:
        claimed = claim_one(s, job_id, owner="w", now=NOW, lease_seconds=600)
    assert claimed is not None
    return claimed


def _rows(db: Database) -> int:
    with db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(Attempt)) or 0)


def test_a_slot_lost_to_a_slow_commit_leaves_no_row_while_its_call_waits(db: Database) -> None:
    _slot_lost_to_a_slow_commit(db, rows=None)


def test_the_same_holds_with_rows_written_from_the_loop(postgres_url: str) -> None:
    truncate(postgres_url)
    with Database(postgres_url) as db:
        _slot_lost_to_a_slow_commit(db, rows=LoopAttempts(postgres_url))


def _slot_lost_to_a_slow_commit(db: Database, rows: LoopAttempts | None) -> None:
    claimed = _claimed_job(db)
    journal = AttemptJournal(db, [claimed], "w", rows)
    # Another transaction holds the job's row (SQLite: the write lock) while the first slot
    # comes due, so the journal's insert waits far past the slot's jitter budget.
    held, release = threading.Event(), threading.Event()

    def hold_the_job() -> None:
        with db.transaction() as s:
            s.execute(select(Job.id).where(Job.id == claimed.job_id).with_for_update())
            held.set()
            release.wait(30)

    env = {**made_up_credentials(), **EXACT_SIMULATOR, "VREC_DATABASE_URL": db.url}
    settings = settings_from_env(env)
    with SimulatorThread(settings, providers=[P]) as sim:
        assert sim.simulator is not None
        stats = sim.simulator.stats[P]
        pointed = point_at(settings, sim.base_url, [P])
        # Slots 2.06 s apart: the first lead + T = 2.16 s after the call asks.
        block = pointed.provider(P).model_copy(update={"rate": 0.5})
        pointed = pointed.model_copy(update={P: block})
        provider = get_provider(P, pointed)
        ready = prepare_job(
            provider, licence_page("FRONT", 1, (900, 600)), {}, expected_sha256=None
        )
        assert isinstance(ready, Ready)

        async def main() -> tuple[int, int, int]:
            async with aiohttp.ClientSession() as session:
                holder = threading.Thread(target=hold_the_job)
                holder.start()
                assert held.wait(10)
                asked = time.monotonic()
                place = JournalPlace(journal, 0)
                call = asyncio.create_task(
                    call_job(provider, ready, LocalLimiter(), session, pointed, journal=place)
                )
                # The insert waits from the first slot (2.16 s) to here (2.6 s): the call is
                # late, forfeits the slot and takes the next (4.22 s).
                await asyncio.sleep(max(0.0, asked + 2.6 - time.monotonic()))
                release.set()
                await asyncio.to_thread(holder.join, 10)
                await asyncio.sleep(max(0.0, asked + 3.4 - time.monotonic()))
                # What a worker killed now would leave: no row, for no call.
                waiting = (await asyncio.to_thread(_rows, db), stats.calls, len(journal.ids))
                run = await asyncio.wait_for(call, 20)
                assert run.call is not None, run
                if rows is not None:
                    await rows.aclose()
                return waiting

        assert asyncio.run(main()) == (0, 0, 0)
        assert stats.calls == 1
    with db.transaction() as s:
        row = s.scalars(select(Attempt)).one()  # the call made at the next slot, once
        assert (row.id, row.job_id, row.outcome) == (
            journal.ids[claimed.job_id],
            claimed.job_id,
            "in_flight",
        )


def test_a_row_the_loop_cannot_write_is_a_call_not_recorded(postgres_url: str) -> None:
    truncate(postgres_url)
    with Database(postgres_url) as db:
        claimed = _claimed_job(db)
        gone = make_url(postgres_url).set(database="vrec_no_such_database").render_as_string(False)
        journal = AttemptJournal(db, [claimed], "w", LoopAttempts(gone))
        with pytest.raises(CallNotRecorded) as raised:
            asyncio.run(journal.calling(0, NOW))
        assert raised.value.provider == P
        assert "vrec_no_such_database" in str(raised.value)
        assert journal.ids == {}
        assert _rows(db) == 0
