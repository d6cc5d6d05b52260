"""Fixtures of the worker tests: the provider a module is about (providers/, simulator/);
settings with the simulator's made-up credentials (service/ has its own)."""

from __future__ import annotations

import pytest

from tests.support.services import EXACT_SIMULATOR
from tests.support.vendors import Vendor
from worker.config import Settings
from worker.settings import get_settings
from worker.simulator.environment import made_up_credentials


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Made-up credentials in the environment (as the simulator accepts them), no seeded
    flaws; the settings read from it."""
    for key, value in (made_up_credentials() | EXACT_SIMULATOR).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def vendor(request: pytest.FixtureRequest) -> Vendor:
    """The provider the module names: ``pytestmark = pytest.mark.vendor(NAME)``, with
    ``credential=value`` for any credential whose made-up value a table pins."""
    marker = request.node.get_closest_marker("vendor")
    if marker is None:
        raise LookupError(f"{request.node.nodeid}: `vendor` needs pytest.mark.vendor(name)")
    return Vendor(*marker.args, **marker.kwargs)
