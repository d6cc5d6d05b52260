"""An embedded Celery worker: what does the work when no broker is configured.

With no ``VREC_BROKER_URL``, :func:`embedded_worker` starts a real Celery worker (threads
pool) in this process on the in-memory transport; messages still go through the broker
and the task, exactly as with Redis and separate ``vrec worker`` processes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery


@contextmanager
def embedded_worker(app: Celery, concurrency: int = 16) -> Iterator[None]:
    """A real Celery worker consuming ``app``'s broker from a thread of this process."""
    ready = threading.Event()

    class _Worker(app.WorkController):  # type: ignore[misc]
        def on_consumer_ready(self, consumer: object) -> None:
            ready.set()

    app.finalize()
    worker = _Worker(
        app=app,
        pool="threads",
        concurrency=concurrency,
        hostname=f"vrec-embedded-{id(app)}@localhost",
        loglevel="WARNING",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        ready_callback=None,
    )
    thread = threading.Thread(target=worker.start, name="vrec-embedded-worker", daemon=True)
    thread.start()
    if not ready.wait(timeout=30):
        raise RuntimeError("embedded Celery worker did not start within 30 s")
    try:
        yield
    finally:
        worker.stop(in_sighandler=False)
        thread.join(timeout=30)
