"""Beat's housekeeping travels on its own queue (vrec.control), job chunks on vrec, each
message on exactly one of them; the embedded worker consumes both."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, update

from models import Job
from models.db import Database
from tests.support.observe import vrec_process
from worker.app import CONTROL_QUEUE, CONTROL_TASKS, QUEUE, make_app
from worker.dispatch import send_jobs
from worker.embedded import embedded_worker
from worker.runtime import shutdown_runtime
from worker.service.database import open_database
from worker.service.submit import submit
from worker.settings import get_settings
from worker.simulator.samples import vehicle_photo


def test_control_tasks_and_job_chunks_land_on_their_own_queue(redis_broker: str) -> None:
    app = make_app(get_settings())
    client = redis.Redis.from_url(redis_broker)
    try:
        for task in CONTROL_TASKS:
            app.send_task(task)
        send_jobs(app, [1, 2, 3], chunk=2)  # two messages
        assert (client.llen(CONTROL_QUEUE), client.llen(QUEUE)) == (len(CONTROL_TASKS), 2)
    finally:
        client.close()
        app.close()


def test_the_embedded_worker_runs_control_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reconcile sent through the in-memory broker returns long-queued jobs to pending."""
    monkeypatch.setenv("VREC_JUHE_CAR__KEY", "made-up")  # registering checks credentials
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "car.jpg").write_bytes(vehicle_photo(1, (320, 240)))
    settings = get_settings()
    with open_database(settings) as db:
        batch_id = submit(db, settings, [str(folder)], ["juhe_car"], {})
    lost = datetime.now(UTC) - timedelta(hours=1)
    with Database(settings.database_url) as db:
        with db.transaction() as s:
            s.execute(update(Job).values(status="queued", queued_at=lost))
        app = make_app(settings)
        try:
            with embedded_worker(app, concurrency=2):
                app.send_task("vrec.reconcile")
                deadline = time.monotonic() + 30
                while True:
                    with db.transaction() as s:
                        status = s.scalar(select(Job.status).where(Job.batch_id == batch_id))
                    if status == "pending":
                        break
                    assert time.monotonic() < deadline, status
                    time.sleep(0.1)
        finally:
            shutdown_runtime()


def test_beat_sends_to_the_control_queue_and_logs_json(
    redis_broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VREC_LOG_FORMAT", "json")
    client = redis.Redis.from_url(redis_broker)
    log = tmp_path / "beat.log"
    args = ("beat", "--loglevel", "INFO", "--schedule", str(tmp_path / "schedule"))
    try:
        with vrec_process(*args, log=log, stdout=tmp_path / "beat.out"):
            deadline = time.monotonic() + 60
            while client.llen(CONTROL_QUEUE) < 2:  # vrec.dispatch every 2 s
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert client.llen(QUEUE) == 0
    finally:
        client.close()
    records = [json.loads(line) for line in log.read_text().splitlines()]  # all JSON
    assert any("vrec.dispatch" in r["message"] for r in records)
