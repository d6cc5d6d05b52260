"""Publishing job ids: chunks of ids per message, one producer connection per window.

A chunk's jobs are claimed and finished in one transaction each and their vendor calls
run concurrently on the worker's event loop, so Celery's per-message cost and the
database's per-commit cost are shared by the chunk. Messages carry ids only.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

from worker.app import QUEUE

TASK = "vrec.process_jobs"


def send_jobs(app: Celery, job_ids: Sequence[int], chunk: int = 8) -> int:
    """Send ``job_ids`` in messages of at most ``chunk`` ids; how many messages."""
    chunks = [list(job_ids[i : i + chunk]) for i in range(0, len(job_ids), max(1, chunk))]
    with app.producer_or_acquire() as producer:
        for ids in chunks:
            app.send_task(TASK, args=[ids], queue=QUEUE, producer=producer)
    return len(chunks)
