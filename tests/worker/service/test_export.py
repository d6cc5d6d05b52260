"""Exporting: one row per submitted file x provider with the typed fields, as CSV that
spreadsheets open safely and as JSON Lines; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from models import migrate
from models.db import Database
from models.queries import _read_only_cursor
from tests.support.storage import answer_batch, plate_answer
from worker.config import Settings
from worker.errors import InvalidImage, Outcome
from worker.jobrun import CallFacts, JobRun
from worker.providers.base import PlateReading, Reading, VehicleLicenseReading, VendorAnswer
from worker.service import export
from worker.service.submit import submit

NOW = datetime.now(UTC)


def _exported(db: Database, fmt: str, **where: object) -> str:
    out = io.StringIO()
    export.write(out, export.rows(db, **where), fmt, bom=(fmt == "csv"))  # type: ignore[arg-type]
    return out.getvalue()


def _licence(job: object) -> JobRun:
    pages: list[Reading] = [
        VehicleLicenseReading(
            "FRONT",
            "沪AA1234",
            owner="张三",
            vin="LSVAM4187C2184847",
            register_date=date(2011, 1, 2),
        ),
        VehicleLicenseReading("BACK", "沪AA1234", file_no="310000123456"),
    ]
    answer = VendorAnswer(Outcome.SUCCEEDED, {}, pages, billed=True, warnings=["-9102"])
    return JobRun(answer=answer, call=CallFacts(NOW, 1.0, 200, None, None, True))


def test_one_row_per_file_and_provider_with_typed_fields(
    db: Database, settings: Settings, photos: Path
) -> None:
    batch = submit(db, settings, [str(photos)], ["tianapi_plate", "tencent_vehicle_license"], {})

    def run_for(job: object) -> JobRun:
        if job.provider == "tencent_vehicle_license":  # type: ignore[attr-defined]
            return _licence(job)
        if job.image_id % 2:  # type: ignore[attr-defined]
            return JobRun(error=InvalidImage("truncated JPEG", provider="tianapi_plate"))
        plates: list[Reading] = [
            PlateReading(0, '=HYPERLINK("http://x")', "blue"),
            PlateReading(1, "粤B2"),
        ]
        answer = VendorAnswer(Outcome.SUCCEEDED, {}, plates, billed=True)
        return JobRun(answer=answer, call=CallFacts(NOW, 1.0, 200, None, None, True))

    answer_batch(db, batch, run_for, now=NOW)
    rows = [json.loads(line) for line in _exported(db, "jsonl", batch_id=batch).splitlines()]
    assert len(rows) == 4 * 2  # four files (two with the same bytes) x two providers
    assert {Path(r["source"]).name for r in rows} == {
        "car0.jpg",
        "car1.jpg",
        "car2.jpg",
        "copy-of-car0.jpg",
    }
    licences = [r for r in rows if r["provider"] == "tencent_vehicle_license"]
    assert all(
        (r["plate_no"], r["owner"], r["vin"], r["file_no"], r["register_date"], r["warnings"])
        == ("沪AA1234", "张三", "LSVAM4187C2184847", "310000123456", "2011-01-02", "-9102")
        for r in licences
    )
    plates = [r for r in rows if r["provider"] == "tianapi_plate" and r["status"] == "succeeded"]
    assert plates
    assert all(r["plates"] == '=HYPERLINK("http://x");粤B2' for r in plates)
    invalid = [r for r in rows if r["status"] == "invalid_image"]
    assert {(r["error_category"], r["error_message"], r["plate_no"]) for r in invalid} == {
        ("invalid_image", "truncated JPEG", None)
    }

    sheet = _exported(db, "csv", batch_id=batch)
    assert sheet.startswith("\ufeffbatch_id,source,")  # UTF-8 BOM: Excel reads it as UTF-8
    table = list(csv.DictReader(io.StringIO(sheet.removeprefix("\ufeff"))))
    assert len(table) == 8
    cells = [row["plate_no"] for row in table if row["plate_no"].startswith("'")]
    assert cells
    assert set(cells) == {'\'=HYPERLINK("http://x")'}
    assert "沪AA1234" in sheet  # non-ASCII kept as it is
    assert "沪AA1234" in _exported(db, "jsonl", batch_id=batch)


def test_export_by_query_and_a_bad_query(db: Database, settings: Settings, photos: Path) -> None:
    batch = submit(db, settings, [str(photos)], ["tianapi_plate"], {})
    answer_batch(db, batch, lambda c: plate_answer("粤B9", NOW), now=NOW)
    sql = "SELECT image_id FROM plate_readings WHERE plate_no = '粤B9'"
    rows = [json.loads(line) for line in _exported(db, "jsonl", sql=sql).splitlines()]
    assert len(rows) == 4
    assert {r["plate_no"] for r in rows} == {"粤B9"}
    from worker.errors import BadQuery

    with pytest.raises(BadQuery, match="no image_id column"):
        _exported(db, "csv", sql="SELECT plate_no FROM plate_readings")


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"])
def test_formula_starts_are_made_inert(value: str) -> None:
    assert export.inert(value) == "'" + value
    assert export.inert("plain") == "plain"
    assert export.inert(-1) == -1  # a number stays a number


def test_sqlites_read_only_guard_refuses_writes(tmp_path: Path) -> None:
    """What PostgreSQL's read-only transaction does (tests/worker/service/test_reprocess.py),
    SQLite's query_only does for a statement that slipped past the parser."""
    url = f"sqlite:///{tmp_path / 'guard.db'}"
    migrate.upgrade(url)
    with Database(url) as db:
        with _read_only_cursor(db.engine) as cursor, pytest.raises(sqlite3.OperationalError):
            cursor.execute("INSERT INTO batches (sources, created_at) VALUES ('[]', 'now')")
        with db.transaction() as s:  # and the connection writes again afterwards
            s.execute(text("INSERT INTO batches (sources, created_at) VALUES ('[]', 'now')"))
            assert s.scalar(text("SELECT COUNT(*) FROM batches")) == 1
