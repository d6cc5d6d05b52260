"""The documented SQL views give the same rows on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from models import Job
from models.batches import create_batch
from models.db import make_engine, make_sessions, transaction
from tests.support.storage import claim_one, finish_one, source
from worker.errors import InvalidImage, Outcome, ServerError
from worker.jobrun import CallFacts, JobRun
from worker.providers.base import (
    CarModelCandidate,
    PlateReading,
    Reading,
    VehicleLicenseReading,
    VendorAnswer,
)
from worker.settings import build_settings

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessions(engine)
    engine.dispose()


def _run(
    sessions: sessionmaker[Session],
    outcomes: dict[str, JobRun],
    *,
    n_images: int = 2,
    now: datetime = T0,
) -> None:
    """A batch of ``n_images`` x the providers in ``outcomes``, each job ending as given."""
    entries = [source(uri=f"/a/{i}.jpg", sha256=f"{i:064x}", size=10) for i in range(n_images)]
    with transaction(sessions) as s:
        batch = create_batch(s, entries, {p: {} for p in outcomes})
        todo = list(s.execute(select(Job.id, Job.provider).where(Job.batch_id == batch.id)))
    for job_id, provider in todo:
        with transaction(sessions) as s:
            claimed = claim_one(s, job_id, owner="o", now=now, lease_seconds=60)
        assert claimed is not None
        with transaction(sessions) as s:
            finish_one(s, claimed, outcomes[provider], now=now)


def _answer(*readings: Reading) -> JobRun:
    return JobRun(
        answer=VendorAnswer(Outcome.SUCCEEDED, {"ok": True}, list(readings), billed=True),
        call=CallFacts(T0, 5.0, 200, None, None, True),
    )


def _rows(sessions: sessionmaker[Session], sql: str) -> list[tuple[object, ...]]:
    with sessions() as s:
        return [tuple(r) for r in s.execute(text(sql))]


def test_latest_plate_top_car_model_and_licences(sessions: sessionmaker[Session]) -> None:
    first = {
        "tianapi_plate": _answer(PlateReading(0, "粤B11111", "blue"), PlateReading(1, "粤B22222")),
        "juhe_car": _answer(
            CarModelCandidate(1, "奥迪A4L", "2017", 0.9, color="黄色"),
            CarModelCandidate(2, "奥迪_S4", "2003", 0.1, color="黄色"),
        ),
        "tencent_vehicle_license": _answer(
            VehicleLicenseReading("FRONT", "沪AA1234", vin="ABCDEFGH123456789"),
            VehicleLicenseReading(
                "BACK", "沪AA1234", file_no="A00-1", register_date=date(2011, 1, 2)
            ),
        ),
    }
    _run(sessions, first)
    # An hour later the first image's plate is read again, differently: the view shows that.
    later = {"aliyun_plate": _answer(PlateReading(0, "粤BP57E7", confidence=0.99))}
    _run(sessions, later, n_images=1, now=T0 + timedelta(hours=1))

    plates = _rows(
        sessions, "SELECT source_uri, plate_no, provider FROM v_latest_plate ORDER BY 1, 3, 2"
    )
    # The latest answer per image and provider, every plate of it: Tianapi's two plates of
    # each image stay findable after Aliyun read the first image again.
    assert plates == [
        ("/a/0.jpg", "粤BP57E7", "aliyun_plate"),
        ("/a/0.jpg", "粤B11111", "tianapi_plate"),
        ("/a/0.jpg", "粤B22222", "tianapi_plate"),
        ("/a/1.jpg", "粤B11111", "tianapi_plate"),
        ("/a/1.jpg", "粤B22222", "tianapi_plate"),
    ]
    cars = _rows(sessions, "SELECT name, year, color FROM v_top_car_model ORDER BY image_id")
    assert cars == [("奥迪A4L", "2017", "黄色")] * 2
    vin = "SELECT plate_no, side FROM v_vehicle_licenses WHERE vin = 'ABCDEFGH123456789'"
    assert _rows(sessions, vin) == [("沪AA1234", "FRONT")] * 2
    plate = "SELECT COUNT(*) FROM v_vehicle_licenses WHERE plate_no = '沪AA1234'"
    assert _rows(sessions, plate) == [(4,)]


def test_failures_and_calls_per_batch(sessions: sessionmaker[Session]) -> None:
    failed = JobRun(
        error=ServerError("HTTP 503", http_status=503, vendor_code="503"),
        call=CallFacts(T0, 5.0, 503, "503", None, False),
    )
    settings = build_settings(max_attempts=1)
    entries = [source(uri=f"/b/{i}.jpg", sha256=f"{i + 100:064x}", size=1) for i in range(3)]
    with transaction(sessions) as s:
        batch = create_batch(s, entries, {"juhe_car": {}}, label="mixed")
        ids = list(s.scalars(select(Job.id).where(Job.batch_id == batch.id).order_by(Job.id)))
    runs = [_answer(CarModelCandidate(1, "x")), failed, JobRun(error=InvalidImage("too small"))]
    for job_id, run in zip(ids, runs, strict=True):
        with transaction(sessions) as s:
            claimed = claim_one(s, job_id, owner="o", now=T0, lease_seconds=60)
            assert claimed is not None
        with transaction(sessions) as s:
            finish_one(s, claimed, run, settings=settings, now=T0)

    failures = _rows(
        sessions,
        "SELECT provider, status, category, vendor_code, jobs FROM v_failures ORDER BY status",
    )
    assert failures == [
        ("juhe_car", "failed", "transient", "503", 1),
        ("juhe_car", "invalid_image", "invalid_image", None, 1),
    ]
    calls = _rows(
        sessions,
        "SELECT label, provider, jobs, calls, billed_calls, transient_calls FROM v_batch_calls",
    )
    assert calls == [("mixed", "juhe_car", 3, 2, 1, 1)]
