"""A real `vrec beat` across a real broker restart: one line when the broker goes, one when
it is back, no traceback, and its tasks sent again afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from tests.support.redis_server import RedisServer, free_port


def _wait_for(path: Path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{path.read_text()}"
        time.sleep(0.1)


def test_beat_says_a_broker_outage_once_and_carries_on(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    broker = f"redis://127.0.0.1:{server.port}/0"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VREC_")}
    env.update(
        {
            "VREC_BROKER_URL": broker,
            "VREC_REDIS_URL": f"redis://127.0.0.1:{server.port}/1",
            "VREC_DATABASE_URL": f"sqlite:///{tmp_path / 'vrec.db'}",
        }
    )
    log = tmp_path / "beat.log"
    schedule = tmp_path / "celerybeat-schedule"
    with log.open("wb") as out:
        beat = subprocess.Popen(
            [sys.executable, "-m", "worker", "beat", "--loglevel", "INFO", "-s", str(schedule)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        _wait_for(log, "Sending due task dispatch")
        server.stop()  # a real SIGTERM; the 2 s dispatch fails several times meanwhile
        time.sleep(7)
        server.start()
        _wait_for(log, "broker back after")
        queued = redis.Redis.from_url(broker)
        deadline = time.monotonic() + 20
        while not queued.llen("vrec.control"):  # beat's messages reach the broker again
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        beat.send_signal(signal.SIGTERM)
        beat.wait(20)
        server.stop()
    text = log.read_text()
    assert "Traceback" not in text
    down = [line for line in text.splitlines() if "unreachable" in line]
    assert len(down) == 1, text
    assert f"broker {broker} unreachable" in down[0]
    assert "check that the broker is up" in down[0]
