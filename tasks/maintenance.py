"""Beat-scheduled housekeeping: dispatch due jobs, return lost ones to pending."""

from __future__ import annotations

from celery import current_app, shared_task

from worker.dispatch import dispatch_once, reconcile_once
from worker.runtime import get_runtime
from worker.sender import send_jobs


@shared_task(name="vrec.dispatch", ignore_result=True)
def dispatch() -> int:
    rt = get_runtime()
    return dispatch_once(
        rt.sessions, lambda ids, size: send_jobs(current_app, ids, size), rt.settings
    )


@shared_task(name="vrec.reconcile", ignore_result=True)
def reconcile() -> int:
    rt = get_runtime()
    return reconcile_once(rt.sessions, rt.settings)
