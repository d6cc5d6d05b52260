"""`vrec health` against real services, healthy and not; two `vrec worker` on one host
with their default node names; the queues each worker consumes."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from models import migrate
from tests.support.observe import vrec_process
from tests.support.services import create_database, drop_database
from worker.app import CONTROL_QUEUE, QUEUE, make_app
from worker.cli import app
from worker.settings import get_settings


def _health(*args: str) -> Result:
    return CliRunner().invoke(app, ["health", *args])


def _checks(*args: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_health(*args, "--json").stdout)
    return data


def _until_two_answer() -> dict[str, Any]:
    """`vrec health --workers --this-host --json` once both workers answer (<= 60 s)."""
    deadline = time.monotonic() + 60
    while True:
        found = _checks("--workers", "--this-host")
        if found["checks"]["workers"]["detail"].startswith("2 answered"):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.5)


def test_two_workers_on_one_host_answer_under_their_own_names(
    redis_broker: str, vendor_env: dict[str, str], tmp_path: Path
) -> None:
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    args = ("worker", "--concurrency", "2", "--loglevel", "INFO")
    with vrec_process(*args, log=logs[0]) as a, vrec_process(*args, log=logs[1]) as b:
        found = _until_two_answer()
        host = socket.gethostname()
        names = {f"vrec-{a.pid}@{host}", f"vrec-{b.pid}@{host}"}
        detail = found["checks"]["workers"]["detail"]
        assert all(name in detail for name in names), detail
        assert found["ok"] is True
        assert set(found["checks"]) == {"database", "broker", "limiter", "workers"}

        # Each consumes the work queue and the control queue.
        control = make_app(get_settings()).control
        queues = control.inspect(destination=sorted(names), timeout=5).active_queues()
        assert {n: sorted(q["name"] for q in qs) for n, qs in queues.items()} == {
            n: [QUEUE, CONTROL_QUEUE] for n in names
        }

        text = _health("--workers", "--this-host")
        assert text.exit_code == 0, text.output
        lines = text.stdout.splitlines()
        assert [line.split()[:2] for line in lines] == [
            ["database", "ok"],
            ["broker", "ok"],
            ["limiter", "ok"],
            ["workers", "ok"],
        ]
        assert "schema at" in lines[0]
        assert "(head)" in lines[0]
    for log in logs:
        assert "DuplicateNodenameWarning" not in log.read_text()


def test_every_fault_is_one_failing_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = create_database("vrec_health")
    try:
        monkeypatch.setenv("VREC_DATABASE_URL", empty)
        monkeypatch.setenv("VREC_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens
        monkeypatch.setenv("VREC_REDIS_URL", "redis://:hunter2@127.0.0.1:1/1")
        get_settings.cache_clear()
        result = _health("--timeout", "1")
        assert result.exit_code == 1, result.output
        lines = result.stdout.splitlines()
        assert [line.split()[:2] for line in lines] == [
            ["database", "FAIL"],
            ["broker", "FAIL"],
            ["limiter", "FAIL"],
        ]
        assert "no vrec tables: run `vrec db upgrade`" in lines[0]
        assert "127.0.0.1:1" in lines[1]
        assert "hunter2" not in result.output
        found = _checks("--timeout", "1")
        assert found["ok"] is False
        assert not any(c["ok"] for c in found["checks"].values())
    finally:
        drop_database(empty)


def test_embedded_mode_database_file_schema_and_no_workers(tmp_path: Path) -> None:
    missing = _health()
    assert missing.exit_code == 1
    assert "no such file: run `vrec db upgrade`" in missing.stdout.splitlines()[0]

    url = get_settings().database_url
    migrate.upgrade(url)
    ok = _health()
    assert ok.exit_code == 0, ok.output
    assert "embedded" in ok.stdout.splitlines()[1]  # broker: none needed
    workers = _health("--workers")
    assert workers.exit_code == 1
    assert "embedded mode has no worker processes" in workers.stdout.splitlines()[-1]

    migrate.downgrade(url, "-1")
    behind = _health()
    assert behind.exit_code == 1
    assert "behind" in behind.stdout.splitlines()[0]
    assert "run `vrec db upgrade`" in behind.stdout.splitlines()[0]
    assert os.path.exists("vrec.db")
