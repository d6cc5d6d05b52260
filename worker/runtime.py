"""The per-process runtime: one asyncio loop owning the aiohttp session and the limiter.

Why this shape: vendor calls are I/O-bound and spend 0.3-2 s waiting on the vendor, so a
worker process must keep many calls in flight. Celery runs tasks in a *threads* pool;
each task thread hands its coroutine to this process's single event loop and blocks on
the future. All calls of the process share one aiohttp session (pooled keep-alive
connections) and one limiter client, and the loop multiplexes them. Image preparation
runs in the task thread or an executor, never on the loop.

Built on first use in each process (prefork children included, via the pid check) or
eagerly by Celery's process hooks in :mod:`worker.app`; never at import time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp

from models import queue
from models.db import Database
from models.loop_attempts import LoopAttempts
from worker import imaging, metrics, request_budget
from worker.config import Settings
from worker.errors import LimiterUnavailable
from worker.pipeline import limiter_key
from worker.providers.base import Provider
from worker.providers.registry import get_provider
from worker.ratelimit import Limiter, make_limiter
from worker.settings import get_settings

T = TypeVar("T")
log = logging.getLogger(__name__)
RATE_REFRESH_SECONDS = 5.0  # how often a served process reads its providers' AIMD factor


class Runtime:
    """Long-lived clients of one process. Thread-safe: tasks call :meth:`run` from threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        imaging.size_process_budget(settings.decode_budget_pixels)
        request_budget.size_process_budget(settings.request_budget_bytes)
        # Leases this process takes are "<worker_id>/<task>", so they can be handed back
        # all at once when it stops (the column holds 64 characters).
        self.worker_id = f"{socket.gethostname()[:40]}:{os.getpid()}"
        self.db = Database(settings.database_url, pool_size=settings.db_pool_size)
        # The journal's rows, written on the loop where the driver allows (PostgreSQL).
        self.attempt_rows = (
            LoopAttempts(settings.database_url)
            if self.db.engine.dialect.name == "postgresql"
            else None
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="vrec-event-loop", daemon=True
        )
        self._thread.start()
        self.http: aiohttp.ClientSession = self.run(self._open_http())
        self.limiter: Limiter = self.run(self._open_limiter())
        self._providers: dict[str, Provider] = {}
        self._lock = threading.Lock()
        self._refresher = (
            asyncio.run_coroutine_threadsafe(self._refresh_rates(), self._loop)
            if metrics.served()
            else None
        )

    async def _open_http(self) -> aiohttp.ClientSession:
        # No cap: the rate limiter (and the optional max_in_flight) decide how many calls go
        # out, and threads x job ids per message bound them. A wait for a pooled connection
        # would come after the limiter's lateness check, where no delay is accounted for.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
        # No cookie jar: fetched hosts must not plant cookies that later calls would send.
        return aiohttp.ClientSession(
            connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
        )

    async def _open_limiter(self) -> Limiter:
        return make_limiter(self.settings.limiter_redis_url, margin=self.settings.limiter_margin)

    async def _refresh_rates(self) -> None:
        """Keep ``vrec_limiter_rate_ratio`` current for the providers this process calls:
        the factor recovers with time, so it is read, not only set when a throttle cuts."""
        while True:
            with self._lock:
                providers = list(self._providers.items())
            for name, provider in providers:
                try:
                    metrics.rate_ratio(name, await self.limiter.factor(limiter_key(provider)))
                except LimiterUnavailable:
                    continue  # the call path logs the limiter being down
            await asyncio.sleep(RATE_REFRESH_SECONDS)

    def provider(self, name: str) -> Provider:
        with self._lock:
            if name not in self._providers:
                self._providers[name] = get_provider(name, self.settings)
            return self._providers[name]

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on this process's loop and wait for it (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def lease_owner(self) -> str:
        """A fresh lease owner for one task of this process."""
        return f"{self.worker_id}/{uuid.uuid4().hex[:12]}"

    def release_leases(self) -> int:
        """Hand back to pending the jobs this process holds leases on (it is stopping); how
        many. Otherwise they would wait for their lease to expire."""
        with self.db.transaction() as session:
            released = queue.release_leases(session, self.worker_id + "/", datetime.now(UTC))
        if released:
            log.warning("stopping: %d unfinished jobs handed back to pending", released)
        return released

    def abort_calls(self) -> None:
        """Cancel every vendor call and fetch in flight (an operator's second interrupt):
        the task threads waiting on them get CancelledError; their leases are then handed
        back with :meth:`release_leases`."""

        def cancel_all() -> None:
            for task in asyncio.all_tasks(self._loop):
                task.cancel()

        self._loop.call_soon_threadsafe(cancel_all)

    def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        try:
            self.run(self.http.close())
            self.run(self.limiter.aclose())
            if self.attempt_rows is not None:
                self.run(self.attempt_rows.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            self.db.dispose()


_lock = threading.Lock()
_runtime: Runtime | None = None
_pid: int | None = None


def get_runtime() -> Runtime:
    """This process's runtime, built on first use with the current settings."""
    global _runtime, _pid
    with _lock:
        if _runtime is None or _pid != os.getpid():
            # After a fork the parent's loop thread does not exist here: start afresh.
            _runtime = Runtime(get_settings())
            _pid = os.getpid()
        return _runtime


def current_runtime() -> Runtime | None:
    """This process's runtime if it was built, without building one."""
    with _lock:
        return _runtime if _pid == os.getpid() else None


def shutdown_runtime() -> None:
    global _runtime, _pid
    with _lock:
        runtime, _runtime = _runtime, None
        owned = _pid == os.getpid()
        _pid = None
    if runtime is not None and owned:
        runtime.close()
