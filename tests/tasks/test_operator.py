"""The operator's experience through the real `vrec` command: every fault one line naming
the fix, refusals of input that would do nothing, exit codes a cron job can trust, real
signals that strand nothing, circuits that know which credential they refused."""

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
from typer.testing import CliRunner, Result

from models import Batch, Job
from models.db import Database
from tests.support.services import EXACT_SIMULATOR, create_database, drop_database, truncate
from worker.cli import app
from worker.settings import get_settings, settings_from_env
from worker.simulator.environment import base_urls, made_up_credentials
from worker.simulator.samples import licence_page
from worker.simulator.server import SimulatorThread

P = "tencent_vehicle_license"


def _vrec(*args: str, code: int) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


def _one_line(result: Result, expected: str) -> None:
    lines = [line for line in result.output.strip().splitlines() if not line.startswith("warning")]
    assert len(lines) == 1, result.output
    assert expected in lines[0]
    assert "Traceback" not in result.output


def _photos(folder: Path, n: int, size: tuple[int, int] = (900, 600), seed: int = 300) -> Path:
    folder.mkdir(exist_ok=True)
    for i in range(n):
        (folder / f"car{i:03d}.jpg").write_bytes(licence_page("FRONT", seed + i, size))
    return folder


# -- faults: one line naming the fix, exit 2 --------------------------------------------


def test_a_database_that_does_not_answer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VREC_DATABASE_URL", "postgresql+psycopg://vrec:s3cret@127.0.0.1:1/vrec")
    for args in (["run", str(_photos(tmp_path / "p", 1)), "-p", P], ["status"], ["batches"]):
        result = _vrec(*args, code=2)
        _one_line(
            result, "cannot reach the database postgresql+psycopg://vrec:***@127.0.0.1:1/vrec"
        )
        assert "check VREC_DATABASE_URL" in result.output
        assert "s3cret" not in result.output


def test_a_schema_missing_or_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    from models import migrate

    url = create_database("vrec_schema")
    try:
        monkeypatch.setenv("VREC_DATABASE_URL", url)
        _one_line(_vrec("status", code=2), "no vrec tables: run `vrec db upgrade`")
        migrate.upgrade(url, "0002")
        _one_line(_vrec("batches", code=2), "behind this vrec: run `vrec db upgrade`")
        _vrec("db", "upgrade", code=0)
        current = _vrec("db", "current", code=0).output
        assert f"at {migrate.head_revision()}" in current
        assert "current" in current
        _vrec("batches", code=0)
    finally:
        drop_database(url)


def test_settings_that_do_not_parse_and_typos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VREC_MAX_ATTEMPTS", "five")
    monkeypatch.setenv("VREC_JUHE_CAR_KEY", "typo")
    result = _vrec("status", code=2)
    _one_line(result, "VREC_MAX_ATTEMPTS='five' is not valid: expected a valid integer")
    assert "warning: VREC_JUHE_CAR_KEY is not a vrec setting; did you mean VREC_JUHE_CAR__KEY?" in (
        result.output
    )
    debug = _vrec("--debug", "status", code=1)  # the traceback, on request
    assert debug.exception is not None


def test_an_option_celerys_worker_does_not_take(tmp_path: Path) -> None:
    env = {**os.environ, "VREC_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", "worker", "worker", "--concurency", "4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "error: No such option '--concurency'. Did you mean '--concurrency'? "
        "(`celery worker --help` lists what passes through)"
    ], done.stderr


def test_a_secret_setting_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VREC_TENCENT_VEHICLE_LICENSE__RATE", "-1")
    monkeypatch.setenv("VREC_TENCENT_VEHICLE_LICENSE__SECRET_KEY", "do-not-echo-me")
    result = _vrec("status", code=2)
    _one_line(result, "VREC_TENCENT_VEHICLE_LICENSE__RATE='-1' is not valid: expected greater")
    assert "do-not-echo-me" not in result.output


def test_missing_credentials_are_found_before_anything_is_registered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = _photos(tmp_path / "p", 2)
    result = _vrec("run", str(folder), "-p", P, code=2)
    _one_line(result, "VREC_TENCENT_VEHICLE_LICENSE__SECRET_ID and")
    listed = json.loads(_vrec("batches", "--json", code=0).stdout)
    assert listed == []  # nothing registered


# -- input that would do nothing ---------------------------------------------------------


def test_refusals_of_input_that_would_do_nothing(
    vendor_env: dict[str, str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line(_vrec("run", str(empty), "-p", P, code=2), f"no image found in {empty}")
    columns = tmp_path / "columns.csv"
    columns.write_text("id,name\n1,first\n2,second\n")
    _one_line(
        _vrec("run", str(columns), "-p", P, code=2),
        "no uri, path or url column (header: 'id', 'name') and its first column holds no",
    )
    _one_line(_vrec("wait", "999", code=2), "no batch 999")
    _one_line(_vrec("resume", "baidu", code=2), "unknown provider 'baidu'")
    assert json.loads(_vrec("batches", "--json", code=0).stdout) == []

    # A manifest without a header keeps its first row.
    _photos(tmp_path / "m", 2)
    headless = tmp_path / "m" / "list.csv"
    headless.write_text("car000.jpg\ncar001.jpg\n")
    summary = json.loads(_vrec("run", str(headless), "-p", P, "--json", code=0).stdout)
    assert summary["counts"]["succeeded"] == 2


# -- exit codes --------------------------------------------------------------------------


def test_exit_codes_and_the_batch_duration(
    vendor_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.simulator.directives import make_image

    ok = _photos(tmp_path / "ok", 2)
    first = json.loads(_vrec("run", str(ok), "-p", P, "--json", code=0).stdout)
    assert first["counts"]["succeeded"] == 2
    flaky = tmp_path / "flaky"
    flaky.mkdir()
    (flaky / "f.png").write_bytes(make_image({"error": "InternalError"}, size=(600, 400)))
    _vrec("run", str(flaky), "-p", P, "--json", code=1)  # done, a job failed

    time.sleep(1.0)  # `wait` comes later than the batch's end: it must not count that
    waited = json.loads(_vrec("wait", str(first["batch_id"]), "--json", code=0).stdout)
    with Database(get_settings().database_url) as db, db.transaction() as s:
        start, end = s.execute(
            select(Batch.created_at, func.max(Job.finished_at))
            .join(Job, Job.batch_id == Batch.id)
            .where(Batch.id == first["batch_id"])
            .group_by(Batch.created_at)
        ).one()
    # The batch's duration (registration to its last job), not the moment `wait` took.
    assert end is not None
    assert waited["seconds"] == pytest.approx((end - start).total_seconds(), abs=0.1)
    assert waited["seconds"] > 0
    monkeypatch.setenv("VREC_TENCENT_VEHICLE_LICENSE__SECRET_KEY", "wrong")
    get_settings.cache_clear()
    other = _photos(tmp_path / "more", 1, seed=900)  # not answered before: it must be called
    _vrec("run", str(other), "-p", P, "--json", code=3)


def test_a_new_credential_closes_the_circuit_without_resume(
    vendor_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _photos(tmp_path / "p", 2)
    monkeypatch.setenv("VREC_TENCENT_VEHICLE_LICENSE__SECRET_ID", "AKIDsomebodyelse")
    get_settings.cache_clear()
    refused = json.loads(_vrec("run", str(folder), "-p", P, "--json", code=3).stdout)
    assert refused["providers_unavailable"][0]["code"] == "AuthFailure.SecretIdNotFound"
    status = json.loads(_vrec("status", "--json", code=0).stdout)
    assert [c["provider"] for c in status["open_circuits"]] == [P]

    # Configured with the right credential: the next run closes the circuit by itself.
    monkeypatch.setenv(
        "VREC_TENCENT_VEHICLE_LICENSE__SECRET_ID",
        vendor_env["VREC_TENCENT_VEHICLE_LICENSE__SECRET_ID"],
    )
    get_settings.cache_clear()
    waited = json.loads(_vrec("wait", str(refused["batch_id"]), "--json", code=0).stdout)
    assert waited["counts"]["succeeded"] == 2
    assert json.loads(_vrec("status", "--json", code=0).stdout)["open_circuits"] == []


def test_version() -> None:
    assert _vrec("--version", code=0).output.startswith("vrec ")


# -- real signals to real processes --------------------------------------------------------


@pytest.fixture
def slow_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A child's environment: the embedded default in tmp_path, a simulator answering in
    0.4-0.6 s, credentials on both sides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VREC_")}
    env.update(made_up_credentials() | EXACT_SIMULATOR)
    env["VREC_DATABASE_URL"] = f"sqlite:///{tmp_path / 'vrec.db'}"
    env["VREC_SIMULATOR__LATENCY_MS"] = "[400, 600]"
    env["VREC_TENCENT_VEHICLE_LICENSE__RATE"] = "4"
    settings = settings_from_env(env)
    with SimulatorThread(settings) as sim:
        env.update(base_urls(settings, sim.base_url))
        yield env


def _started_run(env: dict[str, str], folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "run", str(folder), "-p", P],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _jobs(env: dict[str, str]) -> dict[str, int]:
    with Database(env["VREC_DATABASE_URL"]) as db, db.transaction() as s:
        statuses = s.scalars(select(Job.status)).all()
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts


def _wait_for_progress(env: dict[str, str], proc: subprocess.Popen[str], done: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no job finished"
        try:
            counts = _jobs(env)
        except Exception:  # the database is not created yet
            counts = {}
        if counts.get("succeeded", 0) >= done:
            return
        time.sleep(0.2)


@pytest.mark.parametrize(
    "signals",
    [[signal.SIGINT], [signal.SIGINT, signal.SIGINT], [signal.SIGTERM]],
    ids=["ctrl-c", "ctrl-c twice", "sigterm"],
)
def test_an_interrupted_run_strands_nothing_and_resumes_at_once(
    slow_env: dict[str, str], tmp_path: Path, signals: list[signal.Signals]
) -> None:
    folder = _photos(tmp_path / "p", 30, (600, 400))
    proc = _started_run(slow_env, folder)
    _wait_for_progress(slow_env, proc, done=3)
    for sent in signals:
        proc.send_signal(sent)
        time.sleep(0.05)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "batch 1 paused: vrec wait 1 resumes it" in err
    assert "Traceback" not in err
    counts = _jobs(slow_env)
    assert counts.get("queued", 0) == 0  # nothing stranded on a broker that is gone
    assert counts.get("running", 0) == 0  # nor on a lease nobody will renew
    assert 3 <= counts["succeeded"] < 30

    started = time.monotonic()
    resumed = subprocess.run(
        [sys.executable, "-m", "worker", "wait", "1", "--json"],
        env=slow_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["counts"]["succeeded"] == 30
    assert time.monotonic() - started < 60  # not after a 300 s lease or 900 s queued timeout


def test_progress_off_a_terminal_is_plain_lines(slow_env: dict[str, str], tmp_path: Path) -> None:
    folder = _photos(tmp_path / "p", 12, (600, 400))
    proc = _started_run(slow_env, folder)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    lines = [line for line in err.splitlines() if line.startswith("batch 1: ")]
    assert lines, err
    assert f"{P} " in lines[0]
    assert "/s" in lines[0]
    assert "(elapsed " in lines[0]
    assert "\x1b[" not in err  # no redrawn bar, no colour codes in a log


# -- Redis mode: what is missing, and a worker stopping -----------------------------------


def _worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "worker", "--concurrency", "4", "--loglevel", "ERROR"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_run_with_no_worker_says_how_to_start_one(
    redis_broker: str, vendor_env: dict[str, str], tmp_path: Path, postgres_url: str
) -> None:
    truncate(postgres_url)  # no circuit left open by an earlier test
    folder = _photos(tmp_path / "p", 2, (600, 400))
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "run", str(folder), "-p", P],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        time.sleep(8)  # the follower asks the workers within a few seconds
        assert proc.poll() is None  # nothing runs the jobs: still waiting
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    assert "no vrec worker answers on the broker: start one with `vrec worker`" in err, err
    assert proc.returncode == 130
    assert "Traceback" not in err


def test_a_worker_stopped_with_sigterm_strands_nothing(
    redis_broker: str, vendor_env: dict[str, str], tmp_path: Path, postgres_url: str
) -> None:
    truncate(postgres_url)
    # Calls of 1.5-2 s at 4/s: the worker is mid-batch, calls in flight, when it is stopped.
    slow = {
        **os.environ,
        "VREC_SIMULATOR__LATENCY_MS": "[1500, 2000]",
        f"VREC_{P.upper()}__RATE": "4",
    }
    with SimulatorThread(settings_from_env(slow)) as sim:
        slow.update(base_urls(settings_from_env(slow), sim.base_url))
        folder = _photos(tmp_path / "p", 12, (600, 400))
        detached = subprocess.run(
            [sys.executable, "-m", "worker", "run", str(folder), "-p", P, "--detach", "--json"],
            env=slow,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert detached.returncode == 0, detached.stderr
        batch = json.loads(detached.stdout)["batch_id"]
        worker = _worker(slow)
        try:
            waiter = subprocess.Popen(
                [sys.executable, "-m", "worker", "wait", str(batch), "--json"],
                env=slow,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            _wait_for_progress(slow, waiter, done=1)
            worker.send_signal(signal.SIGTERM)  # warm shutdown: calls in flight finish
            worker.wait(60)
            counts = _jobs(slow)
            assert counts.get("running", 0) == 0  # no lease left for the reconciler
            assert counts.get("succeeded", 0) < 12
            started = time.monotonic()
            rescuer = _worker(slow)
            try:
                out, err = waiter.communicate(timeout=120)
            finally:
                rescuer.send_signal(signal.SIGTERM)
                rescuer.wait(60)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert waiter.returncode == 0, err
    assert json.loads(out)["counts"]["succeeded"] == 12
    assert time.monotonic() - started < 60  # not after a 300 s lease or 900 s queued timeout
