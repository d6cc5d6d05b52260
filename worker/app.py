"""The Celery app, its settings, and the per-process start/stop hooks.

Messages carry job ids only. There is no result backend (the database holds results),
no ETA/countdown (retries are ``not_before`` in the database, picked up by the
dispatcher), and acks are late so a killed worker's message is redelivered; the job's
lease makes the redelivery harmless.

Two queues: ``vrec`` carries the work (job chunks, producers' submissions), ``vrec.control``
the beat's housekeeping (dispatch every 2 s, reconcile, schedules), so that a view of the
work queue (Flower's) shows job tasks. A task's state says only that it ran: a job's
outcome is data (the database, the metrics, the worker's log line), never a task failure.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.concurrency.thread import TaskPool as ThreadPool
from celery.signals import (
    setup_logging,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from kombu.entity import Exchange, Queue

from worker import broker, logs
from worker.config import Settings
from worker.runtime import current_runtime, get_runtime, shutdown_runtime
from worker.settings import get_settings

QUEUE = "vrec"
CONTROL_QUEUE = "vrec.control"
# Beat's tasks: the dispatcher, the reconciler and the scheduled ingestion's tick.
CONTROL_TASKS = ("vrec.dispatch", "vrec.reconcile", "vrec.schedules")
TASK_MODULES = ("tasks.jobs", "tasks.maintenance", "tasks.producer", "tasks.schedules")


def celery_config(settings: Settings) -> dict[str, Any]:
    embedded = settings.broker_url is None
    return {
        "broker_url": settings.broker_url or "memory://localhost/",
        # memory:// polls; the default 1 s would idle the embedded worker between messages.
        "broker_transport_options": (
            {"polling_interval": 0.01} if embedded else {"visibility_timeout": 3600}
        ),
        "broker_connection_retry_on_startup": True,
        # kombu's Redis transport with one bookkeeping client per channel (worker.broker).
        "broker_transport": broker.transport_for(settings.broker_url),
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_default_queue": QUEUE,
        # Each queue its own exchange and key: one shared key would copy every message
        # into both queues.
        "task_queues": tuple(
            Queue(q, Exchange(q), routing_key=q)  # type: ignore[no-untyped-call]
            for q in (QUEUE, CONTROL_QUEUE)
        ),
        "task_routes": {name: {"queue": CONTROL_QUEUE} for name in CONTROL_TASKS},
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        # Celery's scheduler, with a broker outage said once instead of a traceback per tick.
        "beat_scheduler": "worker.beat:Scheduler",
        "beat_schedule": {
            "dispatch": {"task": "vrec.dispatch", "schedule": 2.0},
            "reconcile": {"task": "vrec.reconcile", "schedule": 30.0},
            "schedules": {"task": "vrec.schedules", "schedule": settings.schedule_check_seconds},
        },
    }


def make_app(settings: Settings | None = None) -> Celery:
    """A configured app; tests and the embedded runner make their own with their settings."""
    app = Celery("vrec", include=list(TASK_MODULES))
    app.conf.update(celery_config(settings or get_settings()))
    return app


class _LazyConfig:
    """Read settings when Celery first needs its config, not when this module is imported."""

    def __init__(self) -> None:
        self._conf: dict[str, Any] | None = None

    def _config(self) -> dict[str, Any]:
        if self._conf is None:
            self._conf = celery_config(get_settings())
        return self._conf

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._config()[name]
        except KeyError:  # Celery then falls back to its own default
            raise AttributeError(name) from None

    def __dir__(self) -> list[str]:
        return list(self._config())


# `celery -A worker.app` and `vrec worker` use this one.
app = Celery("vrec", include=list(TASK_MODULES))
app.config_from_object(_LazyConfig())


@setup_logging.connect
def _configure_logging(loglevel: Any = None, **_: Any) -> None:
    # Connected, so Celery leaves logging to us: worker and beat log as VREC_LOG_FORMAT says.
    logs.configure(loglevel or "WARNING", get_settings().log_format)


@worker_process_init.connect
def _build_runtime(**_: Any) -> None:
    get_runtime()  # each prefork child builds its own loop, session, engine and limiter


@worker_ready.connect
def _build_runtime_for_threads(sender: Any = None, **_: Any) -> None:
    # The threads pool runs tasks in this process and sends no worker_process_init: build
    # the runtime now rather than inside the first task (and its timing).
    if isinstance(getattr(sender, "pool", None), ThreadPool):
        get_runtime()


@worker_process_shutdown.connect
@worker_shutdown.connect
def _close_runtime(**_: Any) -> None:
    # A warm shutdown lets running tasks finish; whatever still holds a lease (a task cut
    # short) goes back to pending now, not when its lease expires.
    runtime = current_runtime()
    try:
        if runtime is not None:
            runtime.release_leases()
    finally:
        shutdown_runtime()
