"""Fixtures of the end-to-end tests: the vendor simulator with credentials on both sides."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from worker.settings import get_settings
from worker.simulator.environment import base_urls, made_up_credentials
from worker.simulator.server import SimulatorThread

EXACT = {"VREC_SIMULATOR__WARNING_RATE": "0", "VREC_SIMULATOR__FAILURE_RATE": "0"}


@pytest.fixture
def vendor_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Credentials on both sides, the simulator running, base URLs pointing at it; no
    seeded flaws (each test's images decide its outcomes)."""
    env = made_up_credentials() | EXACT
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
