"""The back-office commands through the real `vrec` CLI, on the embedded default (SQLite,
in-process Celery worker, the simulator on loopback): run twice and pay once, then list,
inspect, export, retry, reprocess, cancel, prune; and each refusal as one line, exit 2."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.support.services import simulator_stats
from worker.cli import app
from worker.simulator.samples import vehicle_photo

P = "tianapi_plate"


def _vrec(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


def _json(*args: str) -> Any:
    return json.loads(_vrec(*args, "--json").stdout)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        (photos / f"car{i}.jpg").write_bytes(vehicle_photo(10 + i, (640, 480)))
    (photos / "copy.jpg").write_bytes((photos / "car0.jpg").read_bytes())
    return photos


def test_run_twice_pay_once_then_work_on_the_batches(
    vendor_env: dict[str, str], folder: Path, tmp_path: Path
) -> None:
    first = _json("run", str(folder), "-p", P, "--label", "first")
    assert (first["counts"]["succeeded"], first["reused"]) == (3, 0)
    calls = simulator_stats(vendor_env, P)["calls"]
    assert calls == 3  # four files, three contents: three calls

    second = _json("run", str(folder), "-p", P, "--label", "second")
    assert (second["counts"]["succeeded"], second["reused"]) == (3, 3)
    assert simulator_stats(vendor_env, P)["calls"] == calls  # nothing new reached the vendor

    listed = _json("batches")
    assert [(b["batch_id"], b["label"], b["state"]) for b in listed] == [
        (second["batch_id"], "second", "done"),
        (first["batch_id"], "first", "done"),
    ]
    assert (listed[0]["calls"], listed[0]["reused"], listed[1]["billed_calls"]) == (0, 3, 3)

    detail = _json("status", str(second["batch_id"]))
    assert detail["providers"][P]["reused"] == 3
    assert detail["providers"][P]["remaining"] == 0

    out = tmp_path / "second.csv"
    _vrec("export", str(second["batch_id"]), "--format", "csv", "-o", str(out), "--bom")
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert sorted(Path(r["source"]).name for r in rows) == [
        "car0.jpg",
        "car1.jpg",
        "car2.jpg",
        "copy.jpg",
    ]
    assert all(r["plate_no"] and r["reused"] == "True" for r in rows)
    lines = _vrec("export", str(first["batch_id"]), "--format", "jsonl").stdout.splitlines()
    assert len(lines) == 4
    assert all(json.loads(line)["status"] == "succeeded" for line in lines)

    # Retry calls the vendor again for the chosen jobs, with a fresh budget.
    retried = _json("retry", str(first["batch_id"]), "--status", "succeeded")
    assert retried == {"batch_id": first["batch_id"], "retried": 3}
    waited = _json("wait", str(first["batch_id"]))
    assert waited["counts"]["succeeded"] == 3
    assert simulator_stats(vendor_env, P)["calls"] == calls + 3

    # From a SQL question to a reprocessing batch, with another provider.
    sql = f"SELECT image_id FROM jobs WHERE batch_id = {first['batch_id']}"
    redone = _json("reprocess", "--query", sql, "-p", "aliyun_plate", "--label", "aliyun")
    assert redone["by_provider"]["aliyun_plate"]["succeeded"] == 3
    again = _json("reprocess", "--batch", str(second["batch_id"]), "--provider", P, "-p", P)
    assert again["reused"] == 3  # the same provider and options: answers reused

    providers = _json("providers")
    assert {p["provider"]: p["credentials"] for p in providers}[P] == {"key": True}
    text = json.dumps(providers)
    assert vendor_env[f"VREC_{P.upper()}__KEY"] not in text  # set, never shown

    assert _json("prune", "--before", "2000-01-01", "--dry-run")["batches"] == 0
    pruned = _json("prune", "--before", "2999-01-01")
    assert (pruned["batches"], pruned["dry_run"]) == (4, False)
    assert _json("batches") == []


def test_cancel_a_registered_batch(vendor_env: dict[str, str], folder: Path) -> None:
    from worker.service.database import open_database
    from worker.service.submit import submit
    from worker.settings import get_settings

    with open_database(get_settings()) as db:
        batch = submit(db, get_settings(), [str(folder)], [P], {})
    assert _json("cancel", str(batch)) == {"batch_id": batch, "cancelled": 3}
    assert "nothing to cancel" in _vrec("cancel", str(batch)).output
    summary = _json("wait", str(batch))
    assert summary["counts"]["cancelled"] == 3
    assert simulator_stats(vendor_env, P)["calls"] == 0


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["wait", "999"], "no batch 999"),
        (["status", "999"], "no batch 999"),
        (["retry", "999"], "no batch 999"),
        (["cancel", "999"], "no batch 999"),
        (["export", "999"], "no batch 999"),
        (["resume", "baidu"], "unknown provider 'baidu'"),
        (["reprocess", "--query", "DELETE FROM jobs", "-p", P], "only a SELECT"),
        (["reprocess", "--query", "SELECT 1 AS x", "-p", P], "no image_id column"),
        (["reprocess", "--query", "SELECT image_id FROM nope", "-p", P], "no such table: nope"),
        (["reprocess", "-p", P], "exactly one of --query SQL or --batch N"),
        (["export", "--query", "SELECT 1 AS x"], "no image_id column"),
        (["run", ".", "-p", "baidu"], "unknown provider 'baidu'"),
    ],
)
def test_refusals_are_one_line_and_exit_2(
    vendor_env: dict[str, str], args: list[str], line: str
) -> None:
    _vrec("batches")  # the embedded database exists (migrated by `run`/`wait` otherwise)
    result = _vrec(*args, code=2)
    assert line in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
