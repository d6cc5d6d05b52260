"""Batches after they ran: list, detail, retry, cancel, prune; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from models import Attempt, Batch, Image, Job, PlateReadingRow, Result
from models.db import Database
from tests.support.storage import answer_batch, plate_answer
from worker.config import Settings
from worker.errors import NotFound, RateLimited, UsageError
from worker.jobrun import CallFacts, JobRun
from worker.service import batches
from worker.service.submit import submit

P = "tianapi_plate"
NOW = datetime.now(UTC)


def _statuses(db: Database, batch_id: int) -> list[str]:
    with db.transaction() as s:
        return list(s.scalars(select(Job.status).where(Job.batch_id == batch_id).order_by(Job.id)))


def _failing(code: str) -> JobRun:
    error = RateLimited("too many", provider=P, vendor_code=code)
    return JobRun(error=error, call=CallFacts(NOW, 1.0, 200, code, None, False))


def test_list_and_detail(db: Database, settings: Settings, photos: Path) -> None:
    done = submit(db, settings, [str(photos)], [P], {}, label="morning run")
    answer_batch(db, done, lambda c: plate_answer("粤B12345", NOW), now=NOW)
    active = submit(db, settings, [str(photos / "car1.jpg")], ["juhe_car"], {}, label="later")

    found = batches.list_batches(db)
    assert [b.batch_id for b in found] == [active, done]
    first = found[1]
    assert (first.label, first.active, first.counts["succeeded"]) == ("morning run", False, 3)
    assert (first.total_calls.calls, first.total_calls.billed) == (3, 3)
    assert found[0].active
    assert list(found[0].by_provider) == ["juhe_car"]
    assert [b.batch_id for b in batches.list_batches(db, label="morning")] == [done]
    assert batches.list_batches(db, since=NOW + timedelta(days=1)) == []

    detail = batches.batch_detail(db, settings, active)
    (progress,) = detail.providers
    assert (progress.provider, progress.remaining, progress.done) == ("juhe_car", 1, 0)
    assert progress.configured_rate == 5.0
    assert progress.eta_seconds == pytest.approx(1 / 5.0)
    assert batches.batch_detail(db, settings, done).eta_seconds is None
    with pytest.raises(NotFound, match="no batch 999"):
        batches.batch_detail(db, settings, 999)


def test_errors_by_vendor_code_and_retry(db: Database, settings: Settings, photos: Path) -> None:
    batch = submit(db, settings, [str(photos)], [P], {})
    once = settings.model_copy(update={"max_attempts": 1})  # throttling gets 4x: 4 calls
    for _ in range(4):
        answer_batch(
            db, batch, lambda c: _failing("130"), now=NOW + timedelta(hours=1), settings=once
        )
        with db.transaction() as s:  # due again at once, as if the backoff had passed
            s.execute(text("UPDATE jobs SET not_before = NULL"))
    assert _statuses(db, batch) == ["failed"] * 3
    detail = batches.batch_detail(db, settings, batch)
    assert [(e.provider, e.code, e.count) for e in detail.errors] == [(P, "130", 3)]

    with pytest.raises(NotFound, match="vendor code '999'"):
        batches.retry(db, batch, code="999")
    with pytest.raises(NotFound, match="no jobs for provider 'juhe_car'"):
        batches.retry(db, batch, provider="juhe_car")
    with pytest.raises(UsageError, match="cannot retry status 'running'"):
        batches.retry(db, batch, statuses=["running"])
    assert batches.retry(db, batch, statuses=["invalid_image"]) == 0  # nothing matches
    assert batches.retry(db, batch, code="130") == 3
    with db.transaction() as s:
        jobs = s.scalars(select(Job).where(Job.batch_id == batch)).all()
        assert {(j.status, j.retries, j.finished_at) for j in jobs} == {("pending", 0, None)}
        assert {j.attempts for j in jobs} == {4}  # history kept
        assert s.scalar(select(func.count()).select_from(Attempt)) == 12

    # A fresh budget: they run again and succeed; their earlier attempts stay.
    answer_batch(db, batch, lambda c: plate_answer("粤B7", NOW), now=NOW + timedelta(hours=2))
    assert _statuses(db, batch) == ["succeeded"] * 3


def test_retry_of_answers_calls_again(db: Database, settings: Settings, photos: Path) -> None:
    batch = submit(db, settings, [str(photos)], [P], {})
    answer_batch(db, batch, lambda c: plate_answer("粤B1", NOW), now=NOW)
    assert batches.retry(db, batch, statuses=["succeeded"]) == 3
    answer_batch(db, batch, lambda c: plate_answer("粤B2", NOW), now=NOW + timedelta(minutes=1))
    with db.transaction() as s:
        results = s.execute(select(Result.job_id, Result.attempt).order_by(Result.id)).all()
        assert sorted(a for _, a in results) == [1, 1, 1, 2, 2, 2]  # one answer per call
        latest = s.execute(text("SELECT plate_no FROM v_latest_plate")).scalars().all()
        assert set(latest) == {"粤B2"}


def test_cancel(db: Database, settings: Settings, photos: Path) -> None:
    batch = submit(db, settings, [str(photos)], [P, "juhe_car"], {})
    with db.transaction() as s:  # one job already running in a worker
        s.execute(text("UPDATE jobs SET status = 'running' WHERE id = (SELECT MIN(id) FROM jobs)"))
    assert batches.cancel(db, batch) == 5
    assert sorted(_statuses(db, batch)) == ["cancelled"] * 5 + ["running"]
    assert batches.cancel(db, batch) == 0
    with pytest.raises(NotFound):
        batches.cancel(db, 12345)
    assert batches.retry(db, batch, statuses=["cancelled"]) == 5  # and back


def test_prune_removes_old_batches_and_what_only_they_refer_to(
    db: Database, settings: Settings, photos: Path, tmp_path: Path
) -> None:
    old = submit(db, settings, [str(photos)], [P], {})
    answer_batch(db, old, lambda c: plate_answer("粤B1", NOW), now=NOW)
    with db.transaction() as s:
        s.execute(text("UPDATE batches SET created_at = :t"), {"t": NOW - timedelta(days=90)})
    # A newer batch reused one image's answer and holds only that image.
    kept = submit(db, settings, [str(photos / "car1.jpg")], [P], {})
    assert _statuses(db, kept) == ["succeeded"]

    before = NOW - timedelta(days=30)
    dry = batches.prune(db, before=before, dry_run=True)
    assert (dry.batches, dry.items, dry.jobs, dry.attempts, dry.results, dry.images) == (
        1,
        4,
        3,
        3,
        3,
        2,
    )
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Batch)) == 2  # nothing removed
    done = batches.prune(db, before=before)
    assert done == dry
    with db.transaction() as s:
        assert list(s.scalars(select(Batch.id))) == [kept]
        assert s.scalar(select(func.count()).select_from(Image)) == 1
        assert s.scalar(select(func.count()).select_from(Attempt)) == 0
        # The reused answer is a copy: the newer batch keeps its typed rows.
        assert s.scalars(select(PlateReadingRow.plate_no)).all() == ["粤B1"]
        reused = s.scalars(select(Job.reused_from_job_id)).one()
        assert reused is None  # its payer is gone; the link is cleared, not dangling
        orphans = {
            "items": "SELECT COUNT(*) FROM items WHERE batch_id NOT IN (SELECT id FROM batches)",
            "jobs": "SELECT COUNT(*) FROM jobs WHERE batch_id NOT IN (SELECT id FROM batches)",
            "results": "SELECT COUNT(*) FROM results WHERE job_id NOT IN (SELECT id FROM jobs)",
            "readings": "SELECT COUNT(*) FROM plate_readings WHERE job_id NOT IN "
            "(SELECT id FROM jobs)",
            "images": "SELECT COUNT(*) FROM images WHERE id NOT IN (SELECT image_id FROM items)",
        }
        assert {name: s.scalar(text(sql)) for name, sql in orphans.items()} == dict.fromkeys(
            orphans, 0
        )
