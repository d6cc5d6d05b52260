"""Helpers shared by tests: real services' URLs and throwaway PostgreSQL databases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
import uuid
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from models import Base
from models.db import make_engine

POSTGRES_ADMIN_URL = os.environ.get(
    "VREC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("VREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CELERY_REDIS_URL = os.environ.get("VREC_TEST_CELERY_REDIS_URL", "redis://127.0.0.1:6379/14")
# The simulator without its seeded flaws (a share of good images answered with a warning
# or an error): each test's images decide its outcomes.
EXACT_SIMULATOR = {"VREC_SIMULATOR__WARNING_RATE": "0", "VREC_SIMULATOR__FAILURE_RATE": "0"}


def create_database(prefix: str = "vrec_test") -> str:
    """A new, empty PostgreSQL database; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    name = make_url(url).database
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def truncate(url: str) -> None:
    """Empty every vrec table of a PostgreSQL database."""
    engine = make_engine(url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


def simulator_stats(env: dict[str, str], provider: str) -> dict[str, Any]:
    """The simulator's own figures for ``provider`` (calls it received), read over HTTP."""
    base = env[f"VREC_{provider.upper()}__BASE_URL"].split("/", 3)[:3]
    with urllib.request.urlopen("/".join(base) + "/__sim/stats", timeout=10) as answer:  # noqa: S310 - loopback
        stats: dict[str, Any] = json.load(answer)[provider]
    return stats


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM (a warm shutdown), SIGKILL if it has not exited within ``timeout``."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stderr:
        proc.stderr.close()
