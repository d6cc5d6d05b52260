"""Fixtures of the end-to-end tests: the vendor simulator with credentials on both sides,
Redis as the broker, a real `vrec worker` process."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.observe import vrec_process
from tests.support.services import CELERY_REDIS_URL, EXACT_SIMULATOR, REDIS_URL
from worker.settings import get_settings
from worker.simulator.environment import base_urls, made_up_credentials
from worker.simulator.server import SimulatorThread


@pytest.fixture
def vendor_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Credentials on both sides, the simulator running, base URLs pointing at it; no
    seeded flaws (each test's images decide its outcomes)."""
    env = made_up_credentials() | EXACT_SIMULATOR
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VREC_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("VREC_BACKOFF_BASE_SECONDS", "0.05")
    get_settings.cache_clear()
    with SimulatorThread(get_settings()) as sim:
        urls = base_urls(get_settings(), sim.base_url)
        for key, value in urls.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        yield {**env, **urls, "VREC_MAX_ATTEMPTS": "2", "VREC_BACKOFF_BASE_SECONDS": "0.05"}


@pytest.fixture
def redis_broker(monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> Iterator[str]:
    client = redis.Redis.from_url(CELERY_REDIS_URL)
    client.flushdb()  # this DB is the tests' own broker
    monkeypatch.setenv("VREC_BROKER_URL", CELERY_REDIS_URL)
    monkeypatch.setenv("VREC_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("VREC_DATABASE_URL", postgres_url)
    get_settings.cache_clear()
    yield CELERY_REDIS_URL
    client.close()


@pytest.fixture
def worker_process(
    redis_broker: str, vendor_env: dict[str, str], tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A real `vrec worker` process consuming from Redis (its log: tmp_path/worker.log)."""
    args = ("worker", "--concurrency", "8", "--loglevel", "WARNING")
    with vrec_process(*args, log=tmp_path / "worker.log") as proc:
        yield proc
