"""make_engine: one pool per worker process, sized to its task threads where there is one;
server connections pinged only after sitting idle; Database.autocommit."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, QueuePool, text
from sqlalchemy.exc import OperationalError

from models.db import Database, make_engine


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


def _kill_backends_of(engine: Engine, admin: Engine) -> int:
    """Terminate the server processes behind ``engine``'s pooled connections (as a server
    restart would); how many."""
    with engine.connect() as conn:
        name = conn.scalar(text("SELECT current_setting('application_name')"))
    with admin.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        ).all()
    return len(killed)


def _engine(url: str, **kwargs: Any) -> Engine:
    return make_engine(
        url, connect_args={"application_name": f"vrec-ping-{uuid.uuid4().hex}"}, **kwargs
    )


def test_a_connection_killed_while_idle_is_replaced_unseen(postgres_url: str) -> None:
    engine = _engine(postgres_url, ping_after_idle=0.2)
    admin = make_engine(postgres_url)
    try:
        assert _kill_backends_of(engine, admin) == 1
        time.sleep(0.3)  # idle past the threshold: pinged, found dead, replaced
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT 1")) == 1
    finally:
        engine.dispose()
        admin.dispose()


def test_a_connection_just_used_is_not_pinged_and_one_failure_renews_the_pool(
    postgres_url: str,
) -> None:
    # The price of pinging only idle connections: a restart right after a connection's use
    # fails its next statement, as it fails the statements running at the time.
    engine = _engine(postgres_url, ping_after_idle=60)
    admin = make_engine(postgres_url)
    try:
        assert _kill_backends_of(engine, admin) == 1
        with pytest.raises(OperationalError) as raised, engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert raised.value.connection_invalidated
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT 1")) == 1
    finally:
        engine.dispose()
        admin.dispose()


def _count(url: str) -> int:
    other = make_engine(url)  # its own pool: what another process would see
    try:
        with other.connect() as conn:
            return int(conn.scalar(text("SELECT count(*) FROM autocommit_probe")))
    finally:
        other.dispose()


def test_autocommit_commits_each_statement_and_gives_back_a_transactional_connection(
    db_url: str,
) -> None:
    server = not db_url.startswith("sqlite")
    with Database(db_url, pool_size=1) as db:
        with db.engine.begin() as conn:
            conn.execute(text("CREATE TABLE autocommit_probe (v INTEGER)"))
        try:
            with db.autocommit() as conn:
                conn.execute(text("INSERT INTO autocommit_probe VALUES (1)"))
                if server:  # committed as it ran: no COMMIT to come
                    assert _count(db_url) == 1
                used = conn.connection.dbapi_connection
            assert _count(db_url) == 1

            # The same pooled connection, transactional again: a failed transaction
            # leaves nothing behind.
            def fail_after_a_write() -> None:
                with db.transaction() as session:
                    assert session.connection().connection.dbapi_connection is used
                    session.execute(text("INSERT INTO autocommit_probe VALUES (2)"))
                    raise RuntimeError("rolled back")

            with pytest.raises(RuntimeError, match="rolled back"):
                fail_after_a_write()
            assert _count(db_url) == 1
        finally:
            with db.engine.begin() as conn:
                conn.execute(text("DROP TABLE autocommit_probe"))
