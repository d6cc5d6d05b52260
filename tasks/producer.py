"""The task a producer with only broker access sends: register a batch (idempotent by key)."""

from __future__ import annotations

from celery import shared_task

from worker.service import work


@shared_task(name="vrec.submit", ignore_result=True)
def submit(
    sources: list[str],
    providers: list[str],
    options: dict[str, str] | None = None,
    label: str | None = None,
    idempotency_key: str | None = None,
    force: bool = False,
) -> int:
    return work.submit_batch(sources, providers, options or {}, label, idempotency_key, force)
