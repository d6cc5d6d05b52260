"""Alembic: upgrade head, downgrade base, upgrade head again, and no drift from the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

import models
from models import migrate
from models.db import make_engine
from tests.support.services import create_database, drop_database


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    url = create_database("vrec_migrate")
    yield url
    drop_database(url)


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_and_no_drift(empty_url: str) -> None:
    expected = set(models.Base.metadata.tables)

    migrate.upgrade(empty_url)
    assert _tables(empty_url) == expected
    migrate.downgrade(empty_url, "base")
    assert _tables(empty_url) == set()
    migrate.upgrade(empty_url)
    assert _tables(empty_url) == expected

    engine = make_engine(empty_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, models.Base.metadata) == []
    finally:
        engine.dispose()


def test_vrec_db_upgrade_uses_the_settings_url(
    empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from worker.cli import app

    monkeypatch.setenv("VREC_DATABASE_URL", empty_url)
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert _tables(empty_url) == set(models.Base.metadata.tables)


def test_0003_carries_existing_batches_over_and_back(empty_url: str) -> None:
    """A database at 0002 with a finished batch: upgrading keeps its data (one item per
    image, the options keyed, the answer as attempt 1), downgrading restores 0002's shape."""
    migrate.upgrade(empty_url, "0002")
    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO batches (id, label, sources, created_at) "
                    "VALUES (1, 'old', '[]', '2026-11-01 08:00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO images (id, sha256, source_uri, created_at) "
                    "VALUES (1, :sha, '/data/a.jpg', '2026-11-01 08:00:00')"
                ),
                {"sha": "a" * 64},
            )
            conn.execute(
                text(
                    "INSERT INTO jobs (id, batch_id, image_id, provider, options, status, "
                    "attempts, retries, created_at, updated_at) VALUES (1, 1, 1, "
                    "'tencent_vehicle_license', '{\"card_side\": \"BACK\"}', 'succeeded', "
                    "1, 0, '2026-11-01 08:00:00', '2026-11-01 08:00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO results (id, job_id, image_id, provider, outcome, raw, "
                    "warnings, created_at) VALUES (1, 1, 1, 'tencent_vehicle_license', "
                    "'succeeded', '{}', '[]', '2026-11-01 08:00:00')"
                )
            )
        migrate.upgrade(empty_url)
        with engine.connect() as conn:
            items = conn.execute(text("SELECT batch_id, image_id, uri FROM items")).all()
            assert [tuple(i) for i in items] == [(1, 1, "/data/a.jpg")]
            key = conn.execute(text("SELECT options_key FROM jobs")).scalar()
            assert key == "card_side=BACK"
            assert conn.execute(text("SELECT attempt FROM results")).scalar() == 1
            assert conn.execute(text("SELECT COUNT(*) FROM v_batch_calls")).scalar() == 1
        migrate.downgrade(empty_url, "0002")
        with engine.connect() as conn:
            uri = conn.execute(text("SELECT source_uri FROM images")).scalar()
            assert uri == "/data/a.jpg"
            assert conn.execute(text("SELECT COUNT(*) FROM results")).scalar() == 1
            assert conn.execute(text("SELECT COUNT(*) FROM v_latest_plate")).scalar() == 0
    finally:
        engine.dispose()


def test_0004_adds_the_schedule_tables_and_takes_them_away(empty_url: str) -> None:
    """0004 only adds tables: existing batches are untouched going up and down, a schedule
    with its source, scan state and a run referring to a batch is stored at 0004, and going
    back to 0003 drops the schedule tables alone."""
    schedule_tables = {"schedules", "schedule_sources", "schedule_files", "schedule_runs"}
    migrate.upgrade(empty_url, "0003")
    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO batches (id, label, sources, created_at) "
                    "VALUES (1, 'before schedules', '[]', '2026-12-01 08:00:00')"
                )
            )
        migrate.upgrade(empty_url)
        assert schedule_tables <= _tables(empty_url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO schedules (id, name, providers, options, globs, cron, timezone,"
                    " paused, next_run_at, created_at, updated_at) VALUES (1, 'nightly',"
                    " '[\"juhe_plate\"]', '{}', '[]', '0 2 * * *', 'Asia/Shanghai', false,"
                    " '2026-12-02 18:00:00', '2026-12-01 08:00:00', '2026-12-01 08:00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO schedule_sources (id, schedule_id, position, kind, uri)"
                    " VALUES (1, 1, 0, 'folder', '/drop')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO schedule_files (source_id, path, path_key, size, mtime_ns,"
                    " taken_at) VALUES (1, '/drop/a.jpg', :key, 10, 1, '2026-12-01 18:00:00')"
                ),
                {"key": "b" * 64},
            )
            conn.execute(
                text(
                    "INSERT INTO schedule_runs (schedule_id, trigger, scheduled_for, started_at,"
                    " finished_at, outcome, files_seen, files_new, files_changed, files_skipped,"
                    " files_gone, files_read, items, batch_id) VALUES (1, 'beat',"
                    " '2026-12-01 18:00:00', '2026-12-01 18:00:01', '2026-12-01 18:00:02',"
                    " 'registered', 1, 1, 0, 0, 0, 1, 1, 1)"
                )
            )
        with engine.connect() as conn:
            joined = conn.execute(
                text(
                    "SELECT s.name, r.outcome, b.label FROM schedule_runs r"
                    " JOIN schedules s ON s.id = r.schedule_id JOIN batches b ON b.id = r.batch_id"
                )
            ).all()
            assert [tuple(row) for row in joined] == [("nightly", "registered", "before schedules")]
        migrate.downgrade(empty_url, "0003")
        assert not schedule_tables & _tables(empty_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT label FROM batches")).scalar() == "before schedules"
        migrate.upgrade(empty_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM schedules")).scalar() == 0
            assert conn.execute(text("SELECT COUNT(*) FROM batches")).scalar() == 1
    finally:
        engine.dispose()
