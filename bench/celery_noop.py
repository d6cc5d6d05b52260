"""A no-op task for bench/throughput.py, loaded into the very same ``vrec worker`` processes
(``vrec worker --include bench.celery_noop``), so the Celery baseline shares their app,
pool, concurrency, broker and settings with the vrec jobs it is compared to."""

from __future__ import annotations

from celery import shared_task

NAME = "bench.noop"


@shared_task(name=NAME, ignore_result=True)  # type: ignore[untyped-decorator]
def noop() -> None:
    """Nothing: what is left is Celery's own cost per message (fetch, run, ack)."""
