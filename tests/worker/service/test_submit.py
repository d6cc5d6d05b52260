"""Submitting batches: every file kept, answers already paid for reused (or not, and why),
idempotency keys; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from models import Attempt, Image, Item, Job, PlateReadingRow, Result
from models.db import Database
from tests.support.services import truncate
from tests.support.storage import answer_batch, plate_answer, settings_for
from worker.config import Settings
from worker.errors import ConfigError, Outcome
from worker.jobrun import JobRun
from worker.providers.base import VendorAnswer
from worker.service.submit import batch_by_key, submit

P = "tianapi_plate"
NOW = datetime.now(UTC)


def _jobs(db: Database, batch_id: int) -> list[Job]:
    with db.transaction() as s:
        return list(s.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.id)))


def _paid_batch(db: Database, settings: Settings, folder: Path, *, at: datetime = NOW) -> int:
    """A batch of ``folder`` for Tianapi whose every job read a plate (billed)."""
    batch = submit(db, settings, [str(folder)], [P], {})
    counts = answer_batch(db, batch, lambda c: plate_answer(f"粤B{c.image_id:05d}", at), now=at)
    assert counts == {"succeeded": 3}
    return batch


def test_every_file_is_kept_with_its_own_path(
    db: Database, settings: Settings, photos: Path
) -> None:
    batch = submit(db, settings, [str(photos)], [P, "juhe_car"], {})
    with db.transaction() as s:
        items = s.execute(select(Item.uri, Item.image_id).where(Item.batch_id == batch)).all()
        assert s.scalar(select(func.count()).select_from(Image)) == 3
    assert len(items) == 4
    by_uri = {Path(uri).name: image for uri, image in items}
    assert by_uri["car0.jpg"] == by_uri["copy-of-car0.jpg"]  # one image, two files
    assert len(_jobs(db, batch)) == 3 * 2  # one job per image and provider, not per file


def test_a_second_batch_reuses_the_paid_answers(
    db: Database, settings: Settings, photos: Path
) -> None:
    first = _paid_batch(db, settings, photos)
    paid = {j.image_id: j.id for j in _jobs(db, first)}

    second = submit(db, settings, [str(photos)], [P], {})
    again = _jobs(db, second)
    assert [j.status for j in again] == ["succeeded"] * 3  # finished at registration
    assert {j.image_id: j.reused_from_job_id for j in again} == paid
    assert all(j.attempts == 0 for j in again)
    with db.transaction() as s:
        calls = s.scalar(
            select(func.count()).select_from(Attempt).join(Job).where(Job.batch_id == second)
        )
        assert calls == 0  # no vendor call, nothing billed
        copies = s.scalars(select(Result).join(Job).where(Job.batch_id == second)).all()
        assert {r.attempt for r in copies} == {0}
        assert all(r.reused_from_id is not None for r in copies)
        plates = s.scalars(
            select(PlateReadingRow.plate_no).join(Job).where(Job.batch_id == second)
        ).all()
        assert sorted(map(str, plates)) == sorted(f"粤B{i:05d}" for i in paid)  # rows copied
        # The new batch's files are in the views, the copy as reused, no call billed.
        found = s.execute(
            text(
                "SELECT source_uri, plate_no, reused FROM v_plate_readings "
                "WHERE batch_id = :b ORDER BY source_uri"
            ),
            {"b": second},
        ).all()
        assert len(found) == 4
        assert {r.reused for r in found} == {1}
        assert any(r.source_uri.endswith("copy-of-car0.jpg") for r in found)
        calls_view = s.execute(
            text("SELECT jobs, calls, billed_calls, reused FROM v_batch_calls WHERE batch_id = :b"),
            {"b": second},
        ).one()
        assert tuple(calls_view) == (3, 0, 0, 3)

    # A third batch reuses the copy, and links to the job that paid, not to the copy.
    third = submit(db, settings, [str(photos)], [P], {})
    assert {j.image_id: j.reused_from_job_id for j in _jobs(db, third)} == paid


def test_no_result_answers_are_reused_too(db: Database, settings: Settings, photos: Path) -> None:
    first = submit(db, settings, [str(photos)], [P], {})

    def nothing(_: object) -> JobRun:
        return JobRun(answer=VendorAnswer(Outcome.NO_RESULT, {}, billed=True))

    answer_batch(db, first, nothing, now=NOW)
    second = submit(db, settings, [str(photos)], [P], {})
    assert [j.status for j in _jobs(db, second)] == ["no_result"] * 3


@pytest.mark.parametrize(
    ("why", "providers", "options", "force", "age"),
    [
        ("forced", [P], {}, True, timedelta(0)),
        ("too old", [P], {}, False, timedelta(days=31)),
        ("another provider", ["juhe_plate"], {}, False, timedelta(0)),
    ],
)
def test_answers_not_reused(
    db: Database,
    settings: Settings,
    photos: Path,
    why: str,
    providers: list[str],
    options: dict[str, str],
    force: bool,
    age: timedelta,
) -> None:
    _paid_batch(db, settings, photos, at=NOW - age)
    batch = submit(db, settings, [str(photos)], providers, options, force=force)
    jobs = _jobs(db, batch)
    assert [j.status for j in jobs] == ["pending"] * 3, why
    assert all(j.reused_from_job_id is None for j in jobs)


def test_other_options_are_another_answer(db: Database, settings: Settings, photos: Path) -> None:
    tencent = "tencent_vehicle_license"
    first = submit(db, settings, [str(photos)], [tencent], {"card_side": "FRONT"})
    answer_batch(db, first, lambda c: plate_answer("x", NOW), now=NOW)
    back = submit(db, settings, [str(photos)], [tencent], {"card_side": "BACK"})
    assert {j.status for j in _jobs(db, back)} == {"pending"}
    front = submit(db, settings, [str(photos)], [tencent], {"card_side": "front"})
    assert {j.status for j in _jobs(db, front)} == {"succeeded"}  # options are normalised


def test_reuse_age_zero_never_reuses(db: Database, settings: Settings, photos: Path) -> None:
    _paid_batch(db, settings, photos)
    never = settings.model_copy(update={"reuse_max_age_days": 0})
    assert {j.status for j in _jobs(db, submit(db, never, [str(photos)], [P], {}))} == {"pending"}


def test_the_same_key_yields_the_same_batch(db: Database, settings: Settings, photos: Path) -> None:
    first = submit(db, settings, [str(photos)], [P], {}, idempotency_key="daily-1")
    again = submit(db, settings, [str(photos / "car1.jpg")], [P], {}, idempotency_key="daily-1")
    assert again == first
    assert batch_by_key(db, "daily-1") == first
    assert batch_by_key(db, "daily-2") is None
    other = submit(db, settings, [str(photos)], [P], {}, idempotency_key="daily-2")
    assert other != first
    assert len(_jobs(db, first)) == 3  # the second send registered nothing


def test_concurrent_sends_of_one_key_make_one_batch(postgres_url: str, photos: Path) -> None:
    truncate(postgres_url)
    settings = settings_for(postgres_url)
    ids: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def send() -> None:
        with Database(postgres_url) as own:
            start.wait()
            try:
                ids.append(submit(own, settings, [str(photos)], [P], {}, idempotency_key="k"))
            except BaseException as exc:  # reported below, not swallowed
                errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(ids) == 6
    assert len(set(ids)) == 1
    with Database(postgres_url) as check, check.transaction() as s:
        assert s.scalar(text("SELECT COUNT(*) FROM batches")) == 1
        assert s.scalar(text("SELECT COUNT(*) FROM jobs")) == 3


def test_no_provider_is_a_usage_error(db: Database, settings: Settings, photos: Path) -> None:
    with pytest.raises(ConfigError, match="no provider chosen"):
        submit(db, settings, [str(photos)], [], {})
