"""Scheduled ingestion end to end: the `vrec schedule` commands on the embedded default
(SQLite, in-process worker, the simulator on loopback), refusals as one line and exit 2;
and two real `vrec beat` processes with a real `vrec worker` on Redis and PostgreSQL
running a due schedule exactly once and only what is new."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner, Result

from models import Batch, Item, Job, Schedule, ScheduleRun
from models.db import Database
from tests.support.services import simulator_stats, stop, truncate
from worker.cli import app
from worker.simulator.samples import vehicle_photo

P = "tianapi_plate"
BEAT = [sys.executable, "-m", "worker", "beat", "--loglevel", "WARNING"]


def _vrec(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


def _json(*args: str, code: int = 0) -> Any:
    return json.loads(_vrec(*args, "--json", code=code).stdout)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        (photos / f"car{i}.jpg").write_bytes(vehicle_photo(40 + i, (640, 480)))
    (photos / "copy.jpg").write_bytes((photos / "car0.jpg").read_bytes())
    return photos


def test_schedule_commands(folder: Path) -> None:
    added = _json(
        "schedule",
        "add",
        "nightly",
        "--source",
        str(folder),
        "-p",
        P,
        "--cron",
        "0 2 * * *",
        "--timezone",
        "Asia/Shanghai",
        "--glob",
        "*.jpg",
    )
    assert added["name"] == "nightly"
    assert added["next_run_at"].endswith("T02:00:00+08:00")
    assert added["sources"] == [{"kind": "folder", "uri": str(folder), "tracked": 0}]
    assert (added["providers"], added["globs"], added["runs"]) == ([P], ["*.jpg"], [])

    listed = _json("schedule", "list")
    assert [s["name"] for s in listed] == ["nightly"]
    assert "nightly" in _vrec("schedule", "list").stdout

    assert _json("schedule", "pause", "nightly") == {"name": "nightly", "paused": True}
    assert _json("schedule", "show", "nightly")["next_run_at"] is None
    resumed = _json("schedule", "resume", "nightly")
    assert resumed["paused"] is False
    assert resumed["next_run_at"].endswith("T02:00:00+08:00")
    shown = _vrec("schedule", "show", "nightly").stdout
    assert "0 2 * * *" in shown
    assert "folder" in shown  # its path is folded over the table's lines

    assert _json("schedule", "remove", "nightly") == {"name": "nightly", "removed": True}
    assert _json("schedule", "list") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "every night"], "error: cron expression 'every night' needs five fields"),
        (["--cron", "0 2 * * 9"], "error: invalid cron expression '0 2 * * 9'"),
        (["--timezone", "Beijing"], "error: unknown time zone 'Beijing'"),
        (["-p", "baidu_plate"], "error: unknown provider 'baidu_plate'"),
        (["-o", "card_side=BACK"], "error: option 'card_side' is not known to tianapi_plate"),
        (["--source", "/no/such/folder"], "error: no such folder or manifest: /no/such/folder"),
        (["--name", "nightly"], "error: a schedule named 'nightly' already exists"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_stored(
    folder: Path, args: list[str], message: str
) -> None:
    _vrec("schedule", "add", "nightly", "-s", str(folder), "-p", P, "--cron", "0 2 * * *")
    given = {"--source": str(folder), "-p": P, "--cron": "0 2 * * *", "--name": "other"}
    extra: list[str] = []
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag == "-o":
            extra += [flag, value]
        else:
            given[flag] = value
    name = given.pop("--name")
    argv = [arg for pair in given.items() for arg in pair]
    result = _vrec("schedule", "add", name, *argv, *extra, code=2)
    assert result.output.startswith(message), result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert [s["name"] for s in _json("schedule", "list")] == ["nightly"]


def test_unknown_schedules_are_one_line_exit_2() -> None:
    for command in ("show", "pause", "resume", "remove", "run"):
        result = _vrec("schedule", command, "nope", code=2)
        expected = "error: no schedule named 'nope' (see `vrec schedule list`)\n"
        assert result.output == expected, result.output
    detached = _vrec("schedule", "run", "nope", "--detach", code=2)
    assert detached.output == "error: --detach needs VREC_BROKER_URL (workers to do the work)\n"


def test_run_twice_registers_and_bills_only_what_is_new(
    vendor_env: dict[str, str], folder: Path, tmp_path: Path
) -> None:
    _vrec("schedule", "add", "drop", "-s", str(folder), "-p", P, "--cron", "@daily")
    first = _json("schedule", "run", "drop")
    assert first["run"]["outcome"] == "registered"
    assert first["run"]["files"]["new"] == 4
    assert first["summary"]["counts"]["succeeded"] == 3  # four files, three contents
    calls = simulator_stats(vendor_env, P)["calls"]
    assert calls == 3

    second = _json("schedule", "run", "drop")
    assert (second["run"]["outcome"], second["run"]["batch_id"]) == ("nothing_new", None)
    assert (second["run"]["files"]["skipped"], second["run"]["files"]["read"]) == (4, 0)
    assert second["summary"] is None
    assert simulator_stats(vendor_env, P)["calls"] == calls  # nothing registered, nothing billed
    line = _vrec("schedule", "run", "drop").stderr
    assert line.startswith("schedule drop: nothing new in 4 seen"), line

    (folder / "car9.jpg").write_bytes(vehicle_photo(49, (640, 480)))
    third = _json("schedule", "run", "drop")
    assert (third["run"]["files"]["new"], third["run"]["items"]) == (1, 1)
    assert simulator_stats(vendor_env, P)["calls"] == calls + 1

    folder.rename(tmp_path / "moved")
    failed = _json("schedule", "run", "drop", code=1)
    assert failed["run"]["outcome"] == "failed"
    assert failed["run"]["reason"] == f"cannot read folder {folder}: No such file or directory"
    runs = _json("schedule", "show", "drop")["runs"]
    assert [r["outcome"] for r in runs] == [
        "failed",
        "registered",
        "nothing_new",
        "nothing_new",
        "registered",
    ]


# -- real beats, a real worker ------------------------------------------------------------


@pytest.fixture
def start_beat(redis_broker: str, tmp_path: Path) -> Iterator[Callable[[], None]]:
    """Start `vrec beat` processes checking schedules every second; stopped afterwards."""
    beats: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        env = {**os.environ, "VREC_SCHEDULE_CHECK_SECONDS": "1"}
        state = tmp_path / f"beat-{len(beats)}"
        beats.append(
            subprocess.Popen(
                [*BEAT, "--schedule", str(state), "--pidfile", f"{state}.pid"],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )

    yield start
    for beat in beats:
        stop(beat)


def _wait(what: str, condition: Callable[[], bool], worker: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while not condition():
        assert worker.poll() is None, "the worker exited"
        assert time.monotonic() < deadline, f"not seen after 90 s: {what}"
        time.sleep(0.2)


def test_two_beats_and_a_worker_run_a_missed_tick_once(
    worker_process: subprocess.Popen[bytes],
    start_beat: Callable[[], None],
    vendor_env: dict[str, str],
    postgres_url: str,
    folder: Path,
) -> None:
    truncate(postgres_url)
    _vrec("schedule", "add", "nightly", "-s", str(folder), "-p", P, "--cron", "0 2 * * *")
    db = Database(postgres_url)

    def beat_was_down(cron: str) -> None:
        """A tick of ``cron`` came while no beat ran: the schedule is due since a day ago."""
        with db.transaction() as s:
            s.execute(
                update(Schedule).values(cron=cron, next_run_at=func.now() - timedelta(days=1))
            )

    def runs() -> list[ScheduleRun]:
        with db.transaction() as s:
            return list(s.scalars(select(ScheduleRun).order_by(ScheduleRun.id)))

    def done(count: int) -> Callable[[], bool]:
        def check() -> bool:
            made = runs()
            if len(made) < count:
                return False
            with db.transaction() as s:
                statuses = s.scalars(select(Job.status).where(Job.batch_id == made[-1].batch_id))
                return all(status == "succeeded" for status in statuses)

        return check

    try:
        beat_was_down("0 2 * * *")
        start_beat()
        start_beat()
        _wait("the missed tick's run and its batch done", done(1), worker_process)
        time.sleep(3)  # both beats go on checking every second: nothing more may run
        (first,) = runs()
        assert (first.trigger, first.outcome, first.files_new) == ("beat", "registered", 4)
        assert first.scheduled_for is not None  # the latest 02:00 passed, run once
        assert (first.scheduled_for.hour, first.scheduled_for.minute) == (2, 0)
        assert simulator_stats(vendor_env, P)["calls"] == 3

        (folder / "new.jpg").write_bytes(vehicle_photo(77, (640, 480)))
        beat_was_down("30 3 * * *")  # another tick came, the next day's for all it knows
        _wait("the next run", done(2), worker_process)
        time.sleep(2)
        made = runs()
        assert [r.outcome for r in made] == ["registered", "registered"]
        with db.transaction() as s:
            assert s.scalar(select(func.count()).select_from(Batch)) == 2
            items = s.scalars(select(Item.uri).where(Item.batch_id == made[1].batch_id))
            assert list(items) == [str(folder / "new.jpg")]
        assert simulator_stats(vendor_env, P)["calls"] == 4
    finally:
        db.dispose()
