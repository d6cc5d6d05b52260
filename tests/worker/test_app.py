"""The Celery app's per-process hooks: where the runtime (loop, session, engine, limiter)
gets built for each kind of pool."""

from __future__ import annotations

from types import SimpleNamespace

from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.concurrency.thread import TaskPool as ThreadPool

from worker import runtime
from worker.app import _build_runtime_for_threads


def test_a_threads_pool_worker_builds_its_runtime_when_ready_not_in_its_first_task() -> None:
    assert runtime._runtime is None
    pool = ThreadPool(limit=1)
    try:
        # Prefork children build theirs on worker_process_init; the parent, which runs no
        # task, must not build one at all.
        _build_runtime_for_threads(sender=SimpleNamespace(pool=PreforkPool(limit=1)))
        assert runtime._runtime is None

        _build_runtime_for_threads(sender=SimpleNamespace(pool=pool))
        assert runtime._runtime is not None
        assert runtime.get_runtime() is runtime._runtime  # the one tasks will use
    finally:
        runtime.shutdown_runtime()
        pool.executor.shutdown()
