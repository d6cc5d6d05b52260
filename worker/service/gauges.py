"""``vrec metrics``: gauges derived from the database, served for Prometheus.

Workers count what they do (:mod:`worker.metrics`); what the queue *is* lives in the
database, so one small exporter asks it at each scrape: jobs by provider and status, the
age of each provider's oldest waiting job, active batches, and open circuits. A database
that does not answer makes ``vrec_database_up`` 0 and the other gauges absent, rather than
the scrape failing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from models import gauges, reports
from models.db import Database
from worker.providers.registry import names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueGauges:
    jobs: dict[str, dict[str, int]]  # provider -> status -> jobs
    oldest_waiting_seconds: dict[str, float]  # provider -> age of its oldest waiting job
    active_batches: int
    circuit_open: dict[str, bool]  # every registered provider


def queue_gauges(db: Database, now: datetime | None = None) -> QueueGauges:
    now = now or datetime.now(UTC)
    with db.transaction() as session:
        jobs = reports.counts_by_provider(session)
        oldest = gauges.oldest_waiting(session)
        active = gauges.active_batches(session)
        open_now = {state.provider for state in reports.open_circuits(session, now)}
    return QueueGauges(
        jobs=jobs,
        oldest_waiting_seconds={p: max(0.0, (now - t).total_seconds()) for p, t in oldest.items()},
        active_batches=active,
        circuit_open={name: name in open_now for name in sorted({*names(), *open_now})},
    )


def _families() -> dict[str, GaugeMetricFamily]:
    return {
        "up": GaugeMetricFamily(
            "vrec_database_up", "Whether the database answered this scrape (1) or not (0)."
        ),
        "jobs": GaugeMetricFamily(
            "vrec_jobs",
            "Jobs in the database by provider and status.",
            labels=["provider", "status"],
        ),
        "oldest": GaugeMetricFamily(
            "vrec_oldest_pending_job_age_seconds",
            "Age of the provider's oldest job no worker holds yet (pending or queued).",
            labels=["provider"],
        ),
        "batches": GaugeMetricFamily(
            "vrec_batches_active", "Batches with a job still pending, queued or running."
        ),
        "circuit": GaugeMetricFamily(
            "vrec_circuit_open",
            "1 while the provider's circuit is open (credentials or account wrong).",
            labels=["provider"],
        ),
    }


class DatabaseCollector(Collector):
    """Asks the database at every scrape (nothing cached, nothing running in between)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def describe(self) -> Iterable[Metric]:
        return list(_families().values())  # registering must not query the database

    def collect(self) -> Iterable[Metric]:
        families = _families()
        try:
            found = queue_gauges(self.db)
        except SQLAlchemyError as exc:
            log.warning("database did not answer the scrape: %s", type(exc).__name__)
            families["up"].add_metric([], 0)
            return [families["up"]]
        families["up"].add_metric([], 1)
        for provider, per_status in found.jobs.items():
            for status, n in per_status.items():
                families["jobs"].add_metric([provider, status], n)
        for provider, age in found.oldest_waiting_seconds.items():
            families["oldest"].add_metric([provider], age)
        families["batches"].add_metric([], found.active_batches)
        for provider, is_open in found.circuit_open.items():
            families["circuit"].add_metric([provider], 1 if is_open else 0)
        return list(families.values())


def serve_gauges(db: Database, port: int, addr: str) -> int:
    """Serve the gauges of ``db`` on ``addr:port`` from a daemon thread; the port bound."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(DatabaseCollector(db))
    server, _ = start_http_server(port, addr, registry)
    return int(server.server_address[1])
