"""The one task that does work: run a chunk of jobs by id (worker.service.work)."""

from __future__ import annotations

from celery import shared_task

from worker.service import work


@shared_task(name="vrec.process_jobs", ignore_result=True)
def process_jobs(job_ids: list[int]) -> dict[str, int]:
    return work.run_jobs(job_ids)
