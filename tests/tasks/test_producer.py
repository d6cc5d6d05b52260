"""Producers: the `vrec.submit` task sent by a program with only broker access, processed
by a real `vrec worker` process on Redis and PostgreSQL; and the Python function. The same
idempotency key always yields the same batch, also when sent several times at once."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from celery import Celery
from sqlalchemy import func, select
from typer.testing import CliRunner

from models import Batch, Job
from models.db import Database
from tests.support.services import CELERY_REDIS_URL, truncate
from worker.cli import app
from worker.service.producer import batch_for_key, submit
from worker.simulator.samples import licence_page

P = "tencent_vehicle_license"


def test_the_submit_task_and_its_key(
    worker_process: subprocess.Popen[bytes], postgres_url: str, tmp_path: Path
) -> None:
    truncate(postgres_url)
    folder = tmp_path / "drop"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes(licence_page("FRONT", 200 + i, (900, 600)))
    producer = Celery("a-producer", broker=CELERY_REDIS_URL)  # knows nothing of vrec's code
    kwargs = {
        "sources": [str(folder)],
        "providers": [P],
        "options": {"card_side": "FRONT"},
        "label": "from a producer",
        "idempotency_key": "drop-2026-12-01",
    }
    for _ in range(4):  # sent four times: one batch
        producer.send_task("vrec.submit", kwargs=kwargs, queue="vrec")
    deadline = time.monotonic() + 60
    batch_id = None
    while batch_id is None:
        assert time.monotonic() < deadline, "the worker never registered the batch"
        assert worker_process.poll() is None
        batch_id = batch_for_key("drop-2026-12-01")
        time.sleep(0.2)
    time.sleep(2)  # the other three sends reach the worker too, and must create nothing
    with Database(postgres_url) as db, db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Batch)) == 1
        assert s.scalar(select(func.count()).select_from(Job)) == 3
        assert s.get_one(Batch, batch_id).label == "from a producer"
    assert submit([str(folder)], [P], idempotency_key="drop-2026-12-01") == batch_id

    waited = CliRunner().invoke(app, ["wait", str(batch_id), "--json"])
    assert waited.exit_code == 0, waited.output
    assert json.loads(waited.stdout)["counts"]["succeeded"] == 3
    producer.close()
