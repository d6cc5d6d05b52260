"""models.jobs.finish against finish_many, on SQLite and PostgreSQL: whichever path a
chunk of one job takes (one statement on PostgreSQL, a transaction otherwise), the rows
it leaves are the ones finish_many leaves."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, update

from models import Attempt, Image, Job, Result, jobs, queue
from models.batches import create_batch
from models.db import Database
from models.readings import CarModelCandidateRow, PlateReadingRow, VehicleLicense
from tests.support.storage import source
from worker import policy
from worker.errors import InvalidImage, Outcome, ServerError
from worker.jobrun import CallFacts, JobRun
from worker.lifecycle import CircuitOpening, Transition
from worker.providers.base import (
    CarModelCandidate,
    PlateReading,
    Reading,
    VehicleLicenseReading,
    VendorAnswer,
)
from worker.settings import build_settings
from worker.sources import SourceFacts

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
P = "tencent_vehicle_license"
CALL = CallFacts(NOW, 12.5, 200, "0", "req-1", True)

LICENSE = VehicleLicenseReading(
    side="FRONT",
    plate_no="沪A12345",
    vin="LSVAM4187C2184847",
    register_date=date(2019, 3, 7),
    issue_date=date(2020, 1, 2),
    warn_codes=[-9102],
    warn_msgs=["复印件"],
)
PLATES: list[Reading] = [
    PlateReading(0, "京N8P8F8", "蓝", 1, 2, 0.98, [1, 2, 30, 40], [{"x": 1, "y": 2}] * 4, 7, 1),
    PlateReading(1, None, None, confidence=0.5),
]
CARS: list[Reading] = [
    CarModelCandidate(1, "大众 朗逸", "2018", 0.91, color="白"),
    CarModelCandidate(2, "x"),
]

RUNS: dict[str, JobRun] = {
    "licence read": JobRun(
        answer=VendorAnswer(Outcome.SUCCEEDED, {"n": 1}, [LICENSE], warnings=["w"]), call=CALL
    ),
    "two plates": JobRun(answer=VendorAnswer(Outcome.SUCCEEDED, {"p": [1]}, PLATES), call=CALL),
    "car model": JobRun(answer=VendorAnswer(Outcome.SUCCEEDED, {}, CARS), call=CALL),
    "no result": JobRun(answer=VendorAnswer(Outcome.NO_RESULT, {"empty": True}), call=CALL),
    "server error": JobRun(error=ServerError("HTTP 502", provider=P, http_status=502), call=CALL),
    "bad image, no call": JobRun(error=InvalidImage("truncated JPEG")),
    "no slot, no call": JobRun(give_back=4.0),
}


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


def _claim_two(db: Database, *, fetched: bool = True) -> list[jobs.ClaimedJob]:
    """Two claimed jobs of two images (``fetched`` False: URLs, their content unknown)."""
    entries = [
        source(uri=f"/img/{i}.jpg", sha256=f"{i:064x}", size=9)
        if fetched
        else source(uri=f"https://cars.example/{i}.jpg")
        for i in range(2)
    ]
    with db.transaction() as s:
        batch = create_batch(s, entries, {P: {}}, label="t")
        queue.mark_queued(s, P, 2, NOW)
        ids = list(s.scalars(select(Job.id).where(Job.batch_id == batch.id).order_by(Job.id)))
    with db.autocommit() as conn:
        return jobs.claim_many(conn, ids, owner="w", now=NOW, lease_seconds=60)


def _decided(claimed: jobs.ClaimedJob, run: JobRun) -> tuple[jobs.ClaimedJob, JobRun, Transition]:
    before = policy.JobBefore(claimed.provider, claimed.attempts, claimed.retries)
    return claimed, run, policy.next_state(run, before, build_settings(), NOW)


def _journal(db: Database, claimed: jobs.ClaimedJob, run: JobRun) -> dict[int, int]:
    if run.call is None:
        return {}
    with db.autocommit() as conn:
        return {claimed.job_id: jobs.start_attempt(conn, claimed, started_at=NOW, worker="w")}


def _rows_of(db: Database, job_id: int) -> dict[str, Any]:
    """Everything stored for one job, without ids (which differ between the two jobs)."""

    def plain(row: Any, *drop: str) -> dict[str, Any]:
        skip = {"id", "job_id", "result_id", "image_id", *drop}
        return {k: v for k, v in vars(row).items() if not k.startswith("_") and k not in skip}

    with db.transaction() as s:
        out: dict[str, Any] = {"job": plain(s.get_one(Job, job_id), "batch_id")}
        for name, model in (
            ("attempts", Attempt),
            ("results", Result),
            ("licences", VehicleLicense),
            ("plates", PlateReadingRow),
            ("cars", CarModelCandidateRow),
        ):
            rows = s.scalars(select(model).where(model.job_id == job_id).order_by(model.id))
            out[name] = [plain(r) for r in rows]
        return out


@pytest.mark.parametrize("case", list(RUNS))
@pytest.mark.parametrize("lease", ["held", "lost"])
def test_finish_writes_what_finish_many_writes(db: Database, case: str, lease: str) -> None:
    run = RUNS[case]
    mine, reference = _claim_two(db)
    if lease == "lost":  # taken back and given to another worker while the call ran
        with db.autocommit() as conn:
            taken = update(Job).where(Job.id.in_([mine.job_id, reference.job_id]))
            conn.execute(taken.values(lease_owner="thief", updated_at=NOW))
    ids = {**_journal(db, mine, run), **_journal(db, reference, run)}

    transition = _decided(mine, run)[2]  # one decision for both: a retry's delay is jittered
    got = jobs.finish(db, [(mine, run, transition)], now=NOW, worker="w", attempt_ids=ids)
    with db.transaction() as s:
        done = [(reference, run, transition)]
        want = jobs.finish_many(s, done, now=NOW, worker="w", attempt_ids=ids)

    assert got == want
    assert (got == [None]) == (lease == "lost")
    stored = _rows_of(db, mine.job_id)
    assert stored == _rows_of(db, reference.job_id)
    assert len(stored["attempts"]) == (run.call is not None)
    if run.answer is not None and lease == "held":
        assert stored["results"][0]["raw"] == run.answer.raw
        readings = stored["licences"] or stored["plates"] or stored["cars"]
        assert len(readings) == len(run.answer.readings)


def _statements(db: Database) -> list[str]:
    seen: list[str] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split(None, 1)[0])

    return seen


def test_one_job_on_postgresql_is_finished_by_one_statement(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        mine, other = _claim_two(db)
        run = RUNS["licence read"]
        ids = _journal(db, mine, run)
        seen = _statements(db)
        assert jobs.finish(db, [_decided(mine, run)], now=NOW, attempt_ids=ids) == ["succeeded"]
        assert seen == ["WITH"]  # no BEGIN, no COMMIT: one round trip
        with db.transaction() as s:
            assert s.get_one(Job, mine.job_id).lease_owner is None
            assert s.scalar(select(VehicleLicense.register_date)) == date(2019, 3, 7)

        # A finish that also opens a circuit takes the general path, in a transaction.
        seen.clear()
        opening = CircuitOpening(P, NOW, NOW + timedelta(minutes=5), "4001", "arrears")
        claimed, failed, transition = _decided(other, RUNS["no slot, no call"])
        decided = (claimed, failed, replace(transition, circuit=opening))
        assert jobs.finish(db, [decided], now=NOW) == ["pending"]
        assert len(seen) > 1
    finally:
        db.dispose()


def test_a_url_image_finish_still_records_its_source_facts(db: Database) -> None:
    unknown, _ = _claim_two(db, fetched=False)
    facts = SourceFacts("f" * 64, 1234, 640, 480, "JPEG")
    run = JobRun(answer=VendorAnswer(Outcome.NO_RESULT, {}), call=CALL, source=facts)
    ids = _journal(db, unknown, run)
    assert jobs.finish(db, [_decided(unknown, run)], now=NOW, attempt_ids=ids) == ["no_result"]
    with db.transaction() as s:
        image = s.get_one(Image, unknown.image_id)
        assert (image.sha256, image.bytes, image.width, image.height) == ("f" * 64, 1234, 640, 480)
