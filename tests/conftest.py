"""Shared fixtures: a clean environment per test, real PostgreSQL and Redis, both databases.

PostgreSQL: each test session creates its own database (dropped at the end), so parallel
runs and other users of the server never see each other. Redis: tests use their own DB
number and unique keys.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from models import migrate
from tests.support.services import create_database, drop_database, truncate
from worker.settings import get_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No VREC_* from the caller's shell, no .env, the default SQLite file in tmp_path."""
    for key in list(os.environ):
        if key.startswith("VREC_") and not key.startswith("VREC_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database for this test session."""
    url = create_database()
    migrate.upgrade(url)
    yield url
    drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: SQLite (the embedded default) and PostgreSQL."""
    url: str
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'vrec.db'}"
        migrate.upgrade(url)
        return url
    url = request.getfixturevalue("postgres_url")
    truncate(url)
    return url
