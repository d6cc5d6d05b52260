"""Fixtures of the service tests: an open database (SQLite and PostgreSQL), its settings,
and folders of real image files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from models.db import Database
from tests.support.storage import settings_for
from worker.config import Settings
from worker.simulator.samples import vehicle_photo


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    with Database(db_url) as database:
        yield database


@pytest.fixture
def settings(db_url: str) -> Settings:
    return settings_for(db_url)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Three distinct photos, and a byte-for-byte copy of the first under another name."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        (folder / f"car{i}.jpg").write_bytes(vehicle_photo(i, (320, 240)))
    (folder / "copy-of-car0.jpg").write_bytes((folder / "car0.jpg").read_bytes())
    return folder
