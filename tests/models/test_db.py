"""make_engine: one pool per worker process, sized to its task threads where there is one."""

from __future__ import annotations

import pytest
from sqlalchemy import QueuePool, text

from models.db import make_engine


def test_the_pool_is_sized_for_file_and_server_databases(db_url: str) -> None:
    engine = make_engine(db_url, pool_size=12)
    try:
        assert isinstance(engine.pool, QueuePool)
        assert engine.pool.size() == 12
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT 1")) == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_takes_a_pool_size_it_has_no_use_for(url: str) -> None:
    # A worker started without VREC_DATABASE_URL pointing at a file (bench/ratelimit's
    # Celery baseline) once died here: SQLite's per-thread pool refuses max_overflow.
    engine = make_engine(url, pool_size=12)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT 1")) == 1
    finally:
        engine.dispose()
