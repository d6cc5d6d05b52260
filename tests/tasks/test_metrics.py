"""Metrics and job log lines of real processes, checked against the database.

A real `vrec worker` (threads pool, then prefork with prometheus-client's multiprocess
mode) serves /metrics while a real batch runs through it against the simulator; its
endpoint is scraped during the batch and after, and every count is compared with what the
database recorded (attempts, billed calls, terminal jobs, error codes). The worker's log
has one line per finished job, as JSON or text, without any credential. `vrec metrics`
serves the database's own gauges.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from models import Attempt, Job
from models.db import Database
from models.jobs import open_circuit
from tests.support.observe import free_port, scrape, series, value, vrec_process
from tests.support.services import truncate
from worker.cli import app
from worker.lifecycle import TERMINAL, CircuitOpening
from worker.simulator.directives import make_image
from worker.simulator.samples import vehicle_photo

PROVIDERS = ("tencent_vehicle_license", "juhe_plate")
TEXT_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        (folder / f"car{i}.jpg").write_bytes(vehicle_photo(100 + i, (800, 600)))
    (folder / "empty.png").write_bytes(make_image({"empty": True}))
    (folder / "flaky.png").write_bytes(make_image({"error": "InternalError"}))
    (folder / "throttled.png").write_bytes(make_image({"error": "RequestLimitExceeded"}))
    (folder / "text.jpg").write_text("not an image")
    Image.new("RGB", (8, 8)).save(folder / "tiny.png")
    return folder


def _register(folder: Path) -> int:
    providers = [arg for p in PROVIDERS for arg in ("-p", p)]
    result = CliRunner().invoke(app, ["run", str(folder), *providers, "--detach", "--json"])
    assert result.exit_code == 0, result.output
    batch_id: int = json.loads(result.stdout)["batch_id"]
    return batch_id


def _database(url: str, batch_id: int) -> dict[str, Any]:
    """What the database says happened, shaped like the metrics' label sets."""
    with Database(url) as db, db.transaction() as s:
        attempts = s.execute(
            select(Attempt.provider, Attempt.outcome, Attempt.vendor_code, Attempt.billed)
            .join(Job, Job.id == Attempt.job_id)
            .where(Job.batch_id == batch_id)
        ).all()
        jobs = s.execute(
            select(Job.provider, Job.status, Job.attempts).where(Job.batch_id == batch_id)
        ).all()
    refused = Counter(p for p, status, n in jobs if status == "invalid_image" and n == 0)
    errors = Counter(
        (p, outcome, code or "none")
        for p, outcome, code, _ in attempts
        if outcome not in ("succeeded", "no_result")
    )
    errors.update({(p, "invalid_image", "none"): n for p, n in refused.items()})
    calls = Counter((p,) for p, *_ in attempts)
    prepared = Counter({(p, "ok"): n for (p,), n in calls.items()})
    prepared.update({(p, "invalid"): n for p, n in refused.items()})
    return {
        "calls": Counter((p, outcome) for p, outcome, _, _ in attempts),
        "per_provider": calls,
        "billed": Counter((p,) for p, _, _, billed in attempts if billed),
        "throttled": Counter((p,) for p, outcome, _, _ in attempts if outcome == "rate_limited"),
        "errors": errors,
        "finished": Counter((p, status) for p, status, _ in jobs if status in TERMINAL),
        "prepared": prepared,
        "active": sum(1 for _, status, _ in jobs if status not in TERMINAL),
    }


def _metrics(samples: dict[Any, float]) -> dict[str, dict[tuple[str, ...], float]]:
    return {
        "calls": series(samples, "vrec_vendor_calls_total", "provider", "outcome"),
        "per_provider": series(samples, "vrec_vendor_call_duration_seconds_count", "provider"),
        "waited": series(samples, "vrec_limiter_wait_seconds_count", "provider"),
        "billed": series(samples, "vrec_vendor_billed_calls_total", "provider"),
        "throttled": series(samples, "vrec_vendor_throttled_total", "provider"),
        "errors": series(samples, "vrec_job_errors_total", "provider", "category", "code"),
        "finished": series(samples, "vrec_jobs_finished_total", "provider", "status"),
        "prepared": series(samples, "vrec_images_prepared_total", "provider", "outcome"),
    }


def _never_decrease(
    before: dict[str, dict[Any, float]], after: dict[str, dict[Any, float]]
) -> None:
    for name, old in before.items():
        for key, n in old.items():
            assert after[name].get(key, 0) >= n, (name, key)


def _follow_while_scraping(batch_id: int, port: int) -> list[dict[str, dict[Any, float]]]:
    """`vrec wait BATCH` in a child process (it dispatches, as beat would), scraping the
    worker's endpoint until it is done; the scrapes, in order."""
    scrapes = [_metrics(scrape(port))]
    follower = subprocess.Popen(
        [sys.executable, "-m", "worker", "wait", str(batch_id), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    while follower.poll() is None:
        scrapes.append(_metrics(scrape(port)))
        time.sleep(0.2)
    out, _ = follower.communicate()
    assert follower.returncode in (0, 1), out  # 1 where the exit code says "some failed"
    assert json.loads(out)["batch_id"] == batch_id
    scrapes.append(_metrics(scrape(port)))
    return scrapes


def _job_lines(log: Path, fmt: str) -> dict[int, dict[str, Any]]:
    """job -> the fields of its `job finished` line in the worker's log."""
    found: dict[int, dict[str, Any]] = {}
    for line in log.read_text().splitlines():
        if fmt == "json":
            record = json.loads(line)  # every line of the log is one JSON object
            if record.get("logger") == "vrec.jobs" and record["message"] == "job finished":
                assert record["level"] == "INFO"
                found[record["job"]] = record
        elif "vrec.jobs: job finished " in line:
            assert " INFO vrec.jobs: " in line
            pairs = TEXT_FIELD.findall(line.partition(": ")[2])
            fields: dict[str, Any] = {
                k: None if v == "-" else json.loads(v) if v[0] == '"' else v for k, v in pairs
            }
            found[int(fields["job"])] = fields
    return found


def _check_job_lines(url: str, batch_id: int, lines: dict[int, dict[str, Any]]) -> None:
    with Database(url) as db, db.transaction() as s:
        jobs = s.execute(
            select(Job.id, Job.provider, Job.status, Job.attempts, Job.last_error_code).where(
                Job.batch_id == batch_id
            )
        ).all()
        last_call = dict(
            s.execute(
                select(Attempt.job_id, Attempt.duration_ms)
                .join(Job, Job.id == Attempt.job_id)
                .where(Job.batch_id == batch_id, Attempt.number == Job.attempts)
            ).all()
        )
    assert set(lines) == {job_id for job_id, *_ in jobs}  # one line per finished job
    for job_id, provider, status, attempts, code in jobs:
        line = lines[job_id]
        assert (str(line["batch"]), line["provider"], line["status"]) == (
            str(batch_id),
            provider,
            status,
        )
        assert str(line["attempt"]) == str(attempts)
        if status == "failed":
            assert line["outcome"] in ("transient", "rate_limited")
            assert line["code"] == code
        else:
            assert line["outcome"] == status
        if job_id in last_call:
            assert abs(float(line["duration_ms"]) - last_call[job_id]) <= 1
        else:
            assert line["duration_ms"] is None


@pytest.mark.parametrize(
    ("pool", "log_format"), [("threads", "json"), ("prefork", "text")], ids=["threads", "prefork"]
)
def test_worker_metrics_and_job_lines_match_the_database(
    pool: str,
    log_format: str,
    redis_broker: str,
    vendor_env: dict[str, str],
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    truncate(postgres_url)
    monkeypatch.setenv("VREC_LOG_FORMAT", log_format)
    port, log = free_port(), tmp_path / "worker.log"
    args = ["worker", "--pool", pool, "--concurrency", "4", "--loglevel", "INFO"]
    with vrec_process(*args, "--metrics-port", str(port), log=log, stdout=tmp_path / "out"):
        before = scrape(port, wait=60)
        assert value(before, "vrec_vendor_calls_total") == 0
        batch_id = _register(_folder(tmp_path))
        scrapes = _follow_while_scraping(batch_id, port)
        for earlier, later in itertools.pairwise(scrapes):
            _never_decrease(earlier, later)
        facts = _database(postgres_url, batch_id)
        final = scrapes[-1]
        assert facts["active"] == 0
        assert final["calls"] == facts["calls"]
        assert final["per_provider"] == facts["per_provider"] == final["waited"]
        assert final["billed"] == facts["billed"]
        assert final["throttled"] == facts["throttled"]
        assert facts["throttled"], "the batch has a throttled image"
        assert final["errors"] == facts["errors"]
        assert final["finished"] == facts["finished"]
        assert final["prepared"] == facts["prepared"]
        # The AIMD factor is read every few seconds for the providers this worker called.
        for provider in PROVIDERS:
            ratio = _eventually(port, "vrec_limiter_rate_ratio", provider=provider)
            assert 0 < ratio <= 1
    _check_job_lines(postgres_url, batch_id, _job_lines(log, log_format))
    written = log.read_text() + (tmp_path / "out").read_text()
    for key, secret in vendor_env.items():
        if "BASE_URL" not in key and key.startswith("VREC_") and len(secret) >= 16:
            assert secret not in written, key


def _eventually(port: int, name: str, **labels: str) -> float:
    """``name``'s value once it is exported (polled for up to 30 s)."""
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while True:
        samples = scrape(port)
        if any(n == name and set(labels.items()) <= ls for n, ls in samples):
            return value(samples, name, **labels)
        assert datetime.now(UTC) < deadline, f"{name} {labels} never exported"
        time.sleep(0.5)


def test_the_database_gauges_of_vrec_metrics(
    redis_broker: str, vendor_env: dict[str, str], postgres_url: str, tmp_path: Path
) -> None:
    truncate(postgres_url)
    batch_id = _register(_folder(tmp_path))  # registered; no worker runs it yet
    port = free_port()
    with vrec_process("metrics", "--port", str(port), log=tmp_path / "metrics.log"):
        samples = scrape(port, wait=60)
        assert value(samples, "vrec_database_up") == 1
        with Database(postgres_url) as db, db.transaction() as s:
            rows = s.execute(select(Job.provider, Job.status).where(Job.batch_id == batch_id))
            jobs = Counter((provider, status) for provider, status in rows)
            oldest = min(s.scalars(select(Job.created_at).where(Job.status == "pending")))
        assert series(samples, "vrec_jobs", "provider", "status") == jobs
        assert value(samples, "vrec_batches_active") == 1
        age = value(samples, "vrec_oldest_pending_job_age_seconds", provider=PROVIDERS[0])
        assert 0 <= age <= (datetime.now(UTC) - oldest).total_seconds()
        assert value(samples, "vrec_circuit_open", provider=PROVIDERS[0]) == 0

        now = datetime.now(UTC)
        with Database(postgres_url) as db, db.transaction() as s:
            open_circuit(s, CircuitOpening(PROVIDERS[0], now, now + timedelta(hours=1), "X", "x"))
        samples = scrape(port)
        assert value(samples, "vrec_circuit_open", provider=PROVIDERS[0]) == 1
        assert value(samples, "vrec_circuit_open", provider=PROVIDERS[1]) == 0


def test_a_metrics_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["worker", "--metrics-port", str(port), "--metrics-addr", "127.0.0.1"]
        result = subprocess.run(
            [sys.executable, "-m", "worker", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
