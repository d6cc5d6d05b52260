"""``vrec health``: whether what vrec needs answers, one check at a time.

Each check returns a :class:`Check` (never raises for the fault it looks for): the
database (reachable, and its schema at this vrec's head), the broker, the rate limiter's
Redis and, on request, that a worker answers a Celery ping. Addresses are shown without
their passwords. Embedded mode (no broker) has no broker or shared limiter to check: those
checks pass and say so; asking for workers there fails, as there are none.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass
from pathlib import Path

import redis
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from models import migrate
from models.db import Database
from worker.app import CONTROL_QUEUE, QUEUE, make_app
from worker.config import Settings
from worker.fetch import redact_url


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def health(
    settings: Settings, *, workers: bool = False, this_host: bool = False, timeout: float = 3.0
) -> list[Check]:
    """Every check, in order: database, broker, limiter, and workers if asked."""
    checks = [
        check_database(settings, timeout),
        check_broker(settings, timeout),
        check_limiter(settings, timeout),
    ]
    if workers:
        checks.append(check_workers(settings, timeout, this_host=this_host))
    return checks


def _reason(exc: BaseException) -> str:
    """The first line of the library's own message (the driver's, for SQLAlchemy)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__


def check_database(settings: Settings, timeout: float) -> Check:
    url = make_url(settings.database_url)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        path = url.database
        if path and path != ":memory:" and not Path(path).exists():
            return Check("database", False, f"{shown}: no such file: run `vrec db upgrade`")
    elif url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": str(math.ceil(timeout))})
    try:
        with Database(url.render_as_string(hide_password=False)) as db, db.engine.connect() as conn:
            state = migrate.schema_state(conn)
            current = migrate.current_revision(conn)
    except SQLAlchemyError as exc:
        return Check("database", False, f"{shown}: {_reason(exc)}")
    head = migrate.head_revision()
    if state is migrate.SchemaState.CURRENT:
        return Check("database", True, f"{shown}, schema at {current} (head)")
    if state is migrate.SchemaState.MISSING:
        return Check("database", False, f"{shown}: no vrec tables: run `vrec db upgrade`")
    if state is migrate.SchemaState.BEHIND:
        detail = f"{shown}: schema at {current}, behind {head}: run `vrec db upgrade`"
        return Check("database", False, detail)
    return Check("database", False, f"{shown}: schema at {current}, newer than this vrec")


def check_broker(settings: Settings, timeout: float) -> Check:
    if settings.broker_url is None:
        return Check("broker", True, "embedded (no VREC_BROKER_URL): `vrec run` works in-process")
    shown = redact_url(settings.broker_url)
    app = make_app(settings)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            waiting = [f"{q}: {_depth(conn, q)}" for q in (QUEUE, CONTROL_QUEUE)]
    except (KombuError, OSError, RedisError) as exc:
        return Check("broker", False, f"{shown}: {_reason(exc)}")
    finally:
        app.close()
    return Check("broker", True, f"{shown}, messages waiting: {', '.join(waiting)}")


def _depth(conn: object, queue: str) -> str:
    """Messages waiting in ``queue`` (``?`` where the transport can't tell)."""
    try:
        _, count, _ = conn.default_channel.queue_declare(queue=queue, passive=True)  # type: ignore[attr-defined]
    except Exception:  # a queue nobody declared yet, or a transport without counts
        return "?"
    return str(count)


def check_limiter(settings: Settings, timeout: float) -> Check:
    url = settings.limiter_redis_url
    if url is None:
        return Check("limiter", True, "in-process (no Redis configured): embedded mode")
    shown = redact_url(url)
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        return Check("limiter", False, f"{shown}: {_reason(exc)}")
    finally:
        client.close()
    return Check("limiter", True, f"{shown} answers")


def check_workers(settings: Settings, timeout: float, *, this_host: bool = False) -> Check:
    """A worker answers a Celery ping (with ``this_host``: one on this host, as a
    container's own healthcheck asks)."""
    if settings.broker_url is None:
        return Check("workers", False, "no VREC_BROKER_URL: embedded mode has no worker processes")
    app = make_app(settings)
    try:
        replies = app.control.ping(timeout=timeout)
    except (KombuError, OSError, RedisError) as exc:
        return Check("workers", False, f"cannot ask: {_reason(exc)}")
    finally:
        app.close()
    names = sorted(name for reply in replies for name in reply)
    where = ""
    if this_host:
        host = socket.gethostname()
        names = [n for n in names if n.partition("@")[2] == host]
        where = f" on {host}"
    if not names:
        return Check(
            "workers", False, f"no worker{where} answered within {timeout:g}s: `vrec worker`"
        )
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return Check("workers", True, f"{len(names)} answered{where}: {shown}")
