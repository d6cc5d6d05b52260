"""A Redis that goes away mid-batch (broker and limiter both): `vrec run` says so in one
line, carries on when it is back, and ends with its summary; no job is lost.

Its own redis-server on a free port, stopped with a real SIGTERM and started again, so
the Redis every other test uses is left alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models import Attempt, Job, Result
from models.db import Database
from tests.support.redis_server import RedisServer, free_port
from tests.support.services import EXACT_SIMULATOR, truncate
from worker.settings import settings_from_env
from worker.simulator.environment import base_urls, made_up_credentials
from worker.simulator.samples import licence_page
from worker.simulator.server import SimulatorThread, VendorStats

P = "tencent_vehicle_license"


@pytest.fixture
def outage_env(
    tmp_path: Path, postgres_url: str
) -> Iterator[tuple[dict[str, str], RedisServer, VendorStats]]:
    truncate(postgres_url)
    server = RedisServer(free_port(), tmp_path)
    server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VREC_")}
    env.update(made_up_credentials() | EXACT_SIMULATOR)
    env.update(
        {
            "VREC_DATABASE_URL": postgres_url,
            "VREC_BROKER_URL": f"redis://127.0.0.1:{server.port}/0",
            "VREC_REDIS_URL": f"redis://127.0.0.1:{server.port}/1",
            "VREC_SIMULATOR__LATENCY_MS": "[200, 300]",
            f"VREC_{P.upper()}__RATE": "5",
            # Messages lost with Redis come back once queued this long (900 s by default).
            "VREC_QUEUED_TIMEOUT_SECONDS": "10",
        }
    )
    settings = settings_from_env(env)
    try:
        with SimulatorThread(settings, providers=[P]) as sim:
            assert sim.simulator is not None
            env.update(base_urls(settings, sim.base_url))
            yield env, server, sim.simulator.stats[P]
    finally:
        server.stop()


def _vrec(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_a_run_carries_on_across_a_redis_restart_and_ends_with_its_summary(
    outage_env: tuple[dict[str, str], RedisServer, VendorStats], tmp_path: Path
) -> None:
    env, server, stats = outage_env
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(30):
        (folder / f"{i:02}.jpg").write_bytes(licence_page("FRONT", 500 + i, (600, 400)))
    worker = _vrec(env, "worker", "--concurrency", "4", "--loglevel", "ERROR")
    try:
        run = _vrec(env, "run", str(folder), "-p", P, "--json")
        deadline = time.monotonic() + 60
        while stats.calls < 5:
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "no call reached the vendor"
            time.sleep(0.05)
        server.stop()  # a real SIGTERM: broker and limiter gone at once
        # Longer than a job given back for want of a limiter waits (5 s): the follower
        # dispatches it while the broker is still down.
        time.sleep(8)
        server.start()  # empty: every message and limiter key it held is gone
        out, err = run.communicate(timeout=180)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        for stream in (worker.stdout, worker.stderr):
            if stream:
                stream.close()

    assert run.returncode == 0, err
    assert "Traceback" not in err
    summary = json.loads(out)
    assert summary["counts"]["succeeded"] == 30
    outage = [line for line in err.splitlines() if "broker" in line and "retrying" in line]
    assert len(outage) == 1, err  # said once, however long it lasted
    assert "check that the broker is up" in outage[0]
    assert any("broker back after" in line for line in err.splitlines()), err

    with Database(env["VREC_DATABASE_URL"]) as db, db.transaction() as s:
        assert set(s.scalars(select(Job.status))) == {"succeeded"}
        per_job = s.execute(select(Result.job_id, func.count()).group_by(Result.job_id)).all()
        assert len(per_job) == 30
        assert {n for _, n in per_job} == {1}
        assert s.scalar(select(func.count()).select_from(Attempt)) == stats.calls
