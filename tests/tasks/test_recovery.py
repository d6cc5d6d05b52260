"""A worker killed mid-batch loses no work: its leases expire, the reconciler returns the
jobs to pending, another worker finishes them, and each job still has exactly one result.
The calls it had in flight are in ``attempts`` as ``lost``: one row per call the vendor saw."""

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
import redis
from sqlalchemy import ColumnElement, func, select
from typer.testing import CliRunner

from models import Attempt, Job, Result
from models.db import make_engine, make_sessions
from tests.support.services import CELERY_REDIS_URL, EXACT_SIMULATOR, REDIS_URL, truncate
from worker.cli import app
from worker.settings import get_settings
from worker.simulator.environment import base_urls, made_up_credentials
from worker.simulator.samples import licence_page
from worker.simulator.server import SimulatorThread, VendorStats

P = "tencent_vehicle_license"


@pytest.fixture
def slow_vendor(monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> Iterator[VendorStats]:
    """The simulator answering in 600-800 ms; yields its counts of the provider's calls."""
    truncate(postgres_url)
    redis.Redis.from_url(CELERY_REDIS_URL).flushdb()
    env = {
        **made_up_credentials(),
        "VREC_DATABASE_URL": postgres_url,
        "VREC_BROKER_URL": CELERY_REDIS_URL,
        "VREC_REDIS_URL": REDIS_URL,
        "VREC_LEASE_SECONDS": "4",  # longer than any one job here, short for the test
        # Messages the victim had prefetched but not started stay unacked in Redis: their
        # jobs come back once queued this long (15 min by default).
        "VREC_QUEUED_TIMEOUT_SECONDS": "8",
        "VREC_SIMULATOR__LATENCY_MS": "[600, 800]",
        **EXACT_SIMULATOR,
        # Slots 250 ms apart: the kill lands while a call is at the vendor, not between
        # the next call's attempt row and its request (a gap of a millisecond or so).
        f"VREC_{P.upper()}__RATE": "4",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    with SimulatorThread(get_settings()) as sim:
        for key, value in base_urls(get_settings(), sim.base_url).items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        assert sim.simulator is not None
        yield sim.simulator.stats[P]


def _worker() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "worker", "--concurrency", "8", "--loglevel", "ERROR"],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _count(url: str, *where: ColumnElement[bool]) -> int:
    engine = make_engine(url)
    try:
        with make_sessions(engine)() as s:
            return int(s.scalar(select(func.count()).select_from(Job).where(*where)) or 0)
    finally:
        engine.dispose()


def test_killed_worker_loses_nothing(
    slow_vendor: VendorStats, tmp_path: Path, postgres_url: str
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(16):
        (folder / f"{i}.jpg").write_bytes(licence_page("FRONT", i, (900, 600)))
    detached = CliRunner().invoke(app, ["run", str(folder), "-p", P, "--detach", "--json"])
    assert detached.exit_code == 0, detached.output
    batch = json.loads(detached.stdout)["batch_id"]

    victim = _worker()
    from worker.app import make_app
    from worker.dispatch import dispatch_once, send_jobs
    from worker.runtime import get_runtime, shutdown_runtime

    celery = make_app(get_settings())
    try:
        dispatch_once(
            get_runtime().db,
            lambda ids, _size: send_jobs(celery, ids, chunk=2),
            get_settings(),
        )
        deadline = time.monotonic() + 30
        while slow_vendor.calls == 0:  # a call reached the vendor: it answers in 600+ ms
            assert time.monotonic() < deadline, "the first worker never called the vendor"
            time.sleep(0.01)
    finally:
        shutdown_runtime()
    victim.send_signal(signal.SIGKILL)  # no warm shutdown: leases are left behind
    victim.wait(10)
    stranded = _count(postgres_url, Job.status.in_(["running", "queued"]))
    assert stranded > 0

    rescuer = _worker()
    try:
        waited = CliRunner().invoke(app, ["wait", str(batch), "--json"])
        assert waited.exit_code == 0, waited.output
        assert json.loads(waited.stdout)["counts"]["succeeded"] == 16
    finally:
        rescuer.send_signal(signal.SIGTERM)
        rescuer.wait(20)

    engine = make_engine(postgres_url)
    try:
        with make_sessions(engine)() as s:
            per_job = s.execute(select(Result.job_id, func.count()).group_by(Result.job_id)).all()
            attempts = s.execute(select(Attempt.outcome, Attempt.billed, Attempt.number)).all()
            lost_jobs = s.execute(
                select(Job.attempts, func.max(Attempt.number))
                .join(Attempt, Attempt.job_id == Job.id)
                .where(Attempt.outcome == "lost")
                .group_by(Job.id, Job.attempts)
            ).all()
    finally:
        engine.dispose()
    assert len(per_job) == 16
    assert {n for _, n in per_job} == {1}
    assert len(attempts) == slow_vendor.calls  # every call the vendor saw, none twice
    lost = [(billed, number) for outcome, billed, number in attempts if outcome == "lost"]
    assert lost, "the victim's calls in flight should be recorded as lost"
    assert {billed for billed, _ in lost} == {None}  # the vendor may or may not have billed
    assert "in_flight" not in {outcome for outcome, _, _ in attempts}
    # A lost call counts among its job's calls: the next one is numbered after it.
    assert all(calls > lost_number for calls, lost_number in lost_jobs)
