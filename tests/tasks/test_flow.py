"""The whole flow, end to end, with real parts: `vrec run` -> database -> Celery -> simulator.

Embedded: SQLite and the in-process Celery worker on the memory transport.
Shared: PostgreSQL, Redis as broker and limiter, and a separate `vrec worker` process.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from models import Attempt, Item, Job, VehicleLicense
from models.db import make_engine, make_sessions
from tests.support.services import (
    create_database,
    drop_database,
    truncate,
)
from worker.cli import app
from worker.settings import build_settings, get_settings
from worker.simulator.directives import make_image
from worker.simulator.environment import base_urls
from worker.simulator.samples import everything, licence_page
from worker.simulator.server import SimulatorThread

P = "tencent_vehicle_license"


def _images(folder: Path) -> dict[str, str]:
    """Images and the job status each must end in."""
    folder.mkdir()
    expected: dict[str, str] = {}
    for i in range(6):
        (folder / f"card{i}.jpg").write_bytes(licence_page("FRONT", i, (900, 600)))
        expected[f"card{i}.jpg"] = "succeeded"
    sub = folder / "nested"
    sub.mkdir()
    (sub / "empty.png").write_bytes(make_image())  # no licence in it
    expected["nested/empty.png"] = "no_result"
    (folder / "blurred.png").write_bytes(make_image({"error": "FailedOperation.ImageBlur"}))
    expected["blurred.png"] = "invalid_image"
    (folder / "flaky.png").write_bytes(make_image({"error": "InternalError"}))
    expected["flaky.png"] = "failed"
    (folder / "text.jpg").write_text("not an image")
    expected["text.jpg"] = "invalid_image"
    Image.new("RGB", (8, 8)).save(folder / "tiny.png")
    expected["tiny.png"] = "invalid_image"
    return expected


def _run_cli(*args: str, code: int = 0) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["run", *args, "--json"])
    assert result.exit_code == code, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def _statuses(url: str, folder: Path) -> dict[str, str]:
    engine = make_engine(url)
    try:
        with make_sessions(engine)() as s:
            on = (Item.batch_id == Job.batch_id) & (Item.image_id == Job.image_id)
            rows = s.execute(select(Item.uri, Job.status).join(Job, on))
            return {str(Path(uri).relative_to(folder.resolve())): st for uri, st in rows}
    finally:
        engine.dispose()


def _check_batch(url: str, folder: Path, expected: dict[str, str], summary: dict[str, Any]) -> None:
    assert _statuses(url, folder) == expected
    counts = summary["counts"]
    assert (counts["succeeded"], counts["no_result"], counts["invalid_image"]) == (6, 1, 3)
    assert counts["failed"] == 1
    assert summary["total"] == len(expected)
    reasons = {Path(f["source"]).name: f["reason"] for f in summary["invalid_files"]}
    assert "too small" in reasons["tiny.png"]
    assert "not an image" in reasons["text.jpg"]
    assert "FailedOperation.ImageBlur" in json.dumps(summary["errors"])

    engine = make_engine(url)
    try:
        with make_sessions(engine)() as s:
            licences = s.scalars(select(VehicleLicense)).all()
            assert len(licences) == 6
            assert all(v.plate_no and v.vin and len(v.vin) == 17 for v in licences)
            flaky = s.scalars(
                select(Attempt).join(Job).where(Job.status == "failed").order_by(Attempt.number)
            ).all()
            assert [(a.number, a.vendor_code, a.billed) for a in flaky] == [
                (1, "InternalError", False),
                (2, "InternalError", False),
            ]
    finally:
        engine.dispose()


def test_embedded_sqlite_run(vendor_env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    expected = _images(folder)
    summary = _run_cli(str(folder), "--provider", P, code=1)  # 1: done, a job failed
    _check_batch(get_settings().database_url, folder, expected, summary)


def test_vrec_run_with_card_side_back(vendor_env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "backs"
    folder.mkdir()
    (folder / "back.jpg").write_bytes(licence_page("BACK", 42, (900, 600)))
    summary = _run_cli(str(folder), "-p", P, "--option", "card_side=BACK")
    assert summary["counts"]["succeeded"] == 1
    engine = make_engine(get_settings().database_url)
    with make_sessions(engine)() as s:
        licence = s.scalars(select(VehicleLicense)).one()
        assert licence.side == "BACK"
        assert licence.file_no
    engine.dispose()


def test_wrong_credentials_open_the_circuit_and_keep_jobs(
    vendor_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes(licence_page("FRONT", i, (900, 600)))
    monkeypatch.setenv("VREC_TENCENT_VEHICLE_LICENSE__SECRET_KEY", "not-the-right-key")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["run", str(folder), "-p", P, "--json"])
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"]["pending"] == 3  # kept, not failed, not lost
    assert summary["providers_unavailable"][0]["code"] == "AuthFailure.SignatureFailure"
    assert "not-the-right-key" not in result.output

    status = CliRunner().invoke(app, ["status"])
    assert "circuit open: tencent_vehicle_license" in status.output

    # Fixed: close the circuit and finish the very same batch.
    monkeypatch.setenv(
        "VREC_TENCENT_VEHICLE_LICENSE__SECRET_KEY",
        vendor_env["VREC_TENCENT_VEHICLE_LICENSE__SECRET_KEY"],
    )
    get_settings.cache_clear()
    resumed = CliRunner().invoke(app, ["resume", P])
    assert "circuit closed" in resumed.output
    waited = CliRunner().invoke(app, ["wait", str(summary["batch_id"]), "--json"])
    assert waited.exit_code == 0, waited.output
    assert json.loads(waited.stdout)["counts"]["succeeded"] == 3


def test_detach_needs_a_broker(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(tmp_path), "-p", P, "--detach"])
    assert result.exit_code == 2
    assert "--detach needs VREC_BROKER_URL" in result.output


def test_a_shared_database_without_tables_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = create_database("vrec_empty")
    try:
        monkeypatch.setenv("VREC_DATABASE_URL", url)
        get_settings.cache_clear()
        result = CliRunner().invoke(app, ["run", str(tmp_path), "-p", P])
        assert result.exit_code == 2
        assert "no vrec tables: run `vrec db upgrade`" in result.output
    finally:
        drop_database(url)


def test_postgres_redis_with_a_separate_worker(
    worker_process: subprocess.Popen[bytes], postgres_url: str, tmp_path: Path
) -> None:
    truncate(postgres_url)
    folder = tmp_path / "imgs"
    expected = _images(folder)
    # Registered now, processed by the worker process once dispatched (`wait` dispatches,
    # as beat would on a schedule).
    detached = CliRunner().invoke(app, ["run", str(folder), "-p", P, "--detach", "--json"])
    assert detached.exit_code == 0, detached.output
    batch_id = json.loads(detached.stdout)["batch_id"]
    waited = CliRunner().invoke(app, ["wait", str(batch_id), "--json"])
    assert waited.exit_code == 1, waited.output  # done, and flaky.png failed
    summary = json.loads(waited.stdout)
    assert worker_process.poll() is None  # the worker did the work and is still up
    _check_batch(postgres_url, folder, expected, summary)


def test_settings_default_is_embedded_sqlite() -> None:
    settings = build_settings()
    assert settings.database_url == "sqlite:///vrec.db"
    assert settings.broker_url is None
    assert settings.limiter_redis_url is None


def test_several_providers_in_one_run(vendor_env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "multi"
    folder.mkdir()
    for i in range(2):  # a car with its plate beside a licence page: each vendor reads it
        (folder / f"{i}.jpg").write_bytes(everything(i, (1800, 700)))
    (folder / "tiny.png").write_bytes(make_image(size=(8, 8)))
    args = [str(folder), "-p", "juhe_car", "-p", "aliyun_plate", "-p", P, "-o", "card_side=FRONT"]
    summary = _run_cli(*args)
    assert set(summary["by_provider"]) == {"juhe_car", "aliyun_plate", P}
    for counts in summary["by_provider"].values():
        assert (counts["succeeded"], counts["invalid_image"]) == (2, 1)
    # The one file is listed once per distinct reason, not once per provider.
    tiny = [f["reason"] for f in summary["invalid_files"] if f["source"].endswith("tiny.png")]
    assert sorted(tiny) == [
        "image too small: 8x8, shortest side 8 < 15 px",
        "image too small: 8x8, shortest side 8 < 32 px",
    ]


def test_one_provider_down_does_not_stop_the_others(
    vendor_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tencent's circuit opens while juhe_car's jobs wait out a retry backoff with nothing
    in flight: the run must still finish juhe_car's jobs."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(3):  # Juhe's internal error: transient, retried after the backoff
        (folder / f"{i}.png").write_bytes(make_image({"error": 10014, "n": i}, size=(200, 150)))
    monkeypatch.setenv("VREC_TENCENT_VEHICLE_LICENSE__SECRET_KEY", "wrong")
    monkeypatch.setenv("VREC_BACKOFF_BASE_SECONDS", "1.5")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["run", str(folder), "-p", P, "-p", "juhe_car", "--json"])
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    assert summary["by_provider"]["juhe_car"]["failed"] == 3  # both attempts made, then failed
    assert summary["by_provider"][P]["pending"] == 3


def test_a_daily_quota_running_out_mid_batch_opens_the_circuit(
    vendor_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tencent's resource package runs out after 3 calls: those 3 are read and billed, the
    circuit opens on ResourcePackageRunOut, the other jobs stay pending, nothing after it
    is billed, and `vrec run` exits 3."""
    folder = tmp_path / "cards"
    folder.mkdir()
    for i in range(7):
        (folder / f"{i}.jpg").write_bytes(licence_page("FRONT", 100 + i, (900, 600)))
    monkeypatch.setenv("VREC_SIMULATOR__QUOTAS", json.dumps({P: 3}))
    get_settings.cache_clear()
    with SimulatorThread(get_settings()) as sim:  # this simulator sells 3 calls a day
        for key, value in base_urls(get_settings(), sim.base_url).items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        result = CliRunner().invoke(app, ["run", str(folder), "-p", P, "--json"])
        assert sim.simulator is not None
        over_quota = sim.simulator.snapshot()[P]["over_quota"]
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    assert (summary["counts"]["succeeded"], summary["counts"]["pending"]) == (3, 4)
    assert (
        summary["providers_unavailable"][0]["code"] == "ResourceUnavailable.ResourcePackageRunOut"
    )
    assert over_quota >= 1
    engine = make_engine(get_settings().database_url)
    try:
        with make_sessions(engine)() as s:
            attempts = s.scalars(select(Attempt).order_by(Attempt.id)).all()
            billed = [a for a in attempts if a.billed]
            refused = [
                a for a in attempts if a.vendor_code == "ResourceUnavailable.ResourcePackageRunOut"
            ]
            assert (len(billed), len(refused)) == (3, over_quota)
            assert not any(a.billed for a in refused)  # nothing billed past the quota
            statuses = sorted(s.scalars(select(Job.status)).all())
            assert statuses == ["pending"] * 4 + ["succeeded"] * 3
    finally:
        engine.dispose()
