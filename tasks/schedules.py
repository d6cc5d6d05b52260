"""Beat's scheduled ingestion: run every schedule whose tick has come (worker.service.work)."""

from __future__ import annotations

from celery import shared_task

from worker.service import work


@shared_task(name="vrec.schedules", ignore_result=True)
def run_schedules() -> int:
    return work.run_schedules()
