"""Publishing job ids: one producer connection for a whole window of messages."""

from __future__ import annotations

from collections.abc import Iterable

from celery import Celery

from worker.app import QUEUE

TASK = "vrec.process_job"


def send_jobs(app: Celery, job_ids: Iterable[int]) -> None:
    with app.producer_or_acquire() as producer:
        for job_id in job_ids:
            app.send_task(TASK, args=[job_id], queue=QUEUE, producer=producer)
