"""Harness for the limiter contract tests: one API over both limiters and their "workers".

A *worker* is what shares one limit in production: for :class:`RedisLimiter` a separate
OS process (``spawn``, its own event loop and its own Redis client); for
:class:`LocalLimiter` a thread with its own event loop sharing the one in-process limiter.
Functions run in workers live here, at module level, so spawned children can import them.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import redis

from tests.support.services import REDIS_URL
from worker.pipeline import Ready, call_job, prepare_job
from worker.providers.registry import get_provider
from worker.ratelimit import Aimd, LocalLimiter, RedisLimiter
from worker.ratelimit.base import LEAD_SECONDS
from worker.settings import settings_from_env
from worker.simulator.samples import vehicle_photo

Kind = Literal["local", "redis"]
AnyLimiter = LocalLimiter | RedisLimiter
WorkerFn = Callable[..., Coroutine[Any, Any, Any]]

START_TIMEOUT = 60.0  # spawning children on a loaded machine can take a while
P = "tencent_vehicle_license"  # the provider call_vendor calls


@dataclass(frozen=True)
class Spec:
    """Everything a worker needs to build its own limiter (picklable)."""

    kind: Kind
    margin: float
    aimd: Aimd
    lead: float
    prefix: str  # unique per test: other engineers share this Redis

    def build(self) -> RedisLimiter:
        return RedisLimiter(
            REDIS_URL, margin=self.margin, aimd=self.aimd, lead=self.lead, prefix=self.prefix
        )


@dataclass
class Backend:
    """One limiter implementation under test, with a unique key space."""

    kind: Kind
    margin: float = 0.03
    aimd: Aimd = field(default_factory=Aimd)
    lead: float = LEAD_SECONDS
    spec: Spec = field(init=False)
    _local: LocalLimiter | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        prefix = f"vrec-test:ratelimit:{uuid.uuid4().hex}:"
        self.spec = Spec(self.kind, self.margin, self.aimd, self.lead, prefix)
        if self.kind == "local":
            self._local = LocalLimiter(margin=self.margin, aimd=self.aimd, lead=self.lead)

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[AnyLimiter]:
        """This worker's limiter: the shared local one, or a new Redis client (closed after)."""
        if self._local is not None:
            yield self._local
            return
        limiter = self.spec.build()
        try:
            yield limiter
        finally:
            await limiter.aclose()

    def run_workers(
        self,
        fn: WorkerFn,
        *args: Any,
        copies: int = 1,
        alongside: Callable[[], Any] | None = None,
    ) -> tuple[float, list[Any]]:
        """Run ``fn(limiter, *args)`` in ``copies`` workers released together, and
        ``alongside()`` in a thread of this process from the moment they are released.

        Returns the wall-clock time they were released at and their results in order.
        """
        with _Alongside(alongside) as side:
            if self._local is not None:
                return _run_threads(self._local, fn, args, copies, side.start)
            return _run_processes(self.spec, fn, args, copies, side.start)

    def cleanup(self) -> None:
        if self.kind != "redis":
            return
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=self.spec.prefix + "*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


class _Alongside:
    """A function run in a thread of the test process while the workers run; its error
    fails the test."""

    def __init__(self, fn: Callable[[], Any] | None) -> None:
        self.fn = fn
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        assert self.fn is not None
        try:
            self.fn()
        except BaseException as exc:
            self.error = exc

    def start(self) -> None:
        if self.fn is not None:
            self.thread.start()

    def __enter__(self) -> _Alongside:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        if self.thread.ident is not None:  # started
            self.thread.join(START_TIMEOUT)
            assert not self.thread.is_alive(), "the function run alongside hung"
        if self.error is not None and exc_type is None:
            raise self.error


def _run_threads(
    limiter: LocalLimiter,
    fn: WorkerFn,
    args: Sequence[Any],
    copies: int,
    released: Callable[[], None],
) -> tuple[float, list[Any]]:
    go = threading.Event()
    results: list[Any] = [None] * copies
    errors: list[BaseException] = []

    def main(index: int) -> None:
        go.wait(START_TIMEOUT)
        try:
            results[index] = asyncio.run(fn(limiter, *args))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=main, args=(i,), daemon=True) for i in range(copies)]
    for thread in threads:
        thread.start()
    started = time.time()
    go.set()
    released()
    for thread in threads:
        thread.join(START_TIMEOUT)
    if errors:
        raise errors[0]
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    return started, results


def _child(spec: Spec, fn: WorkerFn, args: Sequence[Any], index: int, ready: Any, go: Any) -> None:
    """Entry point of a spawned worker process: wait for the common start, run, report."""

    async def run() -> Any:
        limiter = spec.build()
        try:
            return await fn(limiter, *args)
        finally:
            await limiter.aclose()

    ready.put(("ready", index, None))
    go.wait(START_TIMEOUT)
    try:
        ready.put(("done", index, asyncio.run(run())))
    except BaseException as exc:
        ready.put(("error", index, repr(exc)))


def _run_processes(
    spec: Spec,
    fn: WorkerFn,
    args: Sequence[Any],
    copies: int,
    released: Callable[[], None],
) -> tuple[float, list[Any]]:
    ctx = multiprocessing.get_context("spawn")
    messages = ctx.Queue()
    go = ctx.Event()
    procs = [
        ctx.Process(target=_child, args=(spec, fn, tuple(args), i, messages, go), daemon=True)
        for i in range(copies)
    ]
    results: list[Any] = [None] * copies
    try:
        for proc in procs:
            proc.start()
        for _ in range(copies):  # every child imported everything: start them together
            kind, _index, _ = messages.get(timeout=START_TIMEOUT)
            assert kind == "ready"
        started = time.time()
        go.set()
        released()
        for _ in range(copies):
            try:
                kind, index, value = messages.get(timeout=START_TIMEOUT)
            except queue.Empty:
                raise AssertionError("a worker process hung") from None
            if kind == "error":
                raise AssertionError(f"worker process {index} failed: {value}")
            results[index] = value
        for proc in procs:
            proc.join(START_TIMEOUT)
    finally:
        for proc in procs:  # only our own children, by handle
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        messages.close()
        messages.join_thread()
    return started, results


# --------------------------------------------------------------------------- worker functions


async def hammer(
    limiter: AnyLimiter, key: str, rate: float, duration: float, concurrency: int
) -> list[float]:
    """``concurrency`` tasks acquiring ``key`` back to back for ``duration`` seconds.

    Returns the wall-clock time at which each call would have been sent (post-sleep).
    """
    stamps: list[float] = []
    end = time.time() + duration

    async def one() -> None:
        while time.time() < end:
            await limiter.acquire(key, rate, max_wait=30.0)
            stamps.append(time.time())

    await asyncio.gather(*(one() for _ in range(concurrency)))
    return stamps


async def penalize(limiter: AnyLimiter, key: str) -> float:
    """Take a slot of ``key`` and report a throttle answer for the call sent in it; returns
    the wall-clock time it was done."""
    slot = await limiter.acquire(key, 1000.0, max_wait=5.0)
    assert await limiter.penalize(key, slot)
    return time.time()


def flush_test_db() -> None:
    """FLUSHDB of the tests' own Redis DB (never FLUSHALL): what a flush, a failover to an
    empty replica or an eviction of every key does to the limiter's state."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()


async def call_vendor(
    limiter: AnyLimiter, env: dict[str, str], duration: float, concurrency: int
) -> list[tuple[float, str]]:
    """``concurrency`` tasks running the pipeline's :func:`~worker.pipeline.call_job` (slot,
    call, penalty on a throttle) back to back for ``duration`` seconds, one small image,
    the provider configured by ``env`` (VREC_* variables, simulator base URL included).

    Returns (wall-clock time of the answer, outcome) for every call: the job's outcome
    value, or ``"given back"`` when the limiter sent the job back.
    """
    settings = settings_from_env(env)
    provider = get_provider(P, settings)
    ready = prepare_job(provider, vehicle_photo(0, (200, 120)), {}, expected_sha256=None)
    assert isinstance(ready, Ready)
    calls: list[tuple[float, str]] = []
    end = time.time() + duration

    async def one(session: aiohttp.ClientSession) -> None:
        while time.time() < end:
            run = await call_job(provider, ready, limiter, session, settings)
            outcome = "given back" if run.give_back or run.outcome is None else run.outcome.value
            calls.append((time.time(), outcome))
            if run.give_back:
                await asyncio.sleep(min(run.give_back, 1.0))

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session) for _ in range(concurrency)))
    return calls
