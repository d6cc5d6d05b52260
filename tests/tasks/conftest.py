"""Fixtures of the end-to-end tests: the vendor simulator with credentials on both sides,
Redis as the broker, a real `vrec worker` process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis

from tests.support.services import CELERY_REDIS_URL, EXACT_SIMULATOR, REDIS_URL, stop
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
    redis_broker: str, vendor_env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """A real `vrec worker` process consuming from Redis."""
    env = {k: v for k, v in os.environ.items()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "worker", "--concurrency", "8", "--loglevel", "WARNING"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    yield proc
    stop(proc)
