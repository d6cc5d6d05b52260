"""Beat-scheduled housekeeping: dispatch due jobs, return lost ones to pending."""

from __future__ import annotations

from celery import current_app, shared_task

from worker.service import work


@shared_task(name="vrec.dispatch", ignore_result=True)
def dispatch() -> int:
    return work.dispatch_due(current_app)


@shared_task(name="vrec.reconcile", ignore_result=True)
def reconcile() -> int:
    return work.reconcile_lost()
