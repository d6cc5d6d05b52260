"""vrec's Prometheus metrics of one worker process, and serving them on a port.

Names follow the Prometheus conventions (``vrec_`` prefix, ``_total`` for counters,
``_seconds`` in base units). Labels are bounded: provider (the registry's names), outcome
and status (enums), error category (an outcome) and vendor code (the vendors' code tables;
at most :data:`MAX_CODES` distinct codes per provider are kept, the rest count as
``other``). Never an image, job or batch id: those are in the database and in the logs.

The pipeline records what only it sees (image preparation, the limiter's wait); the
service records each finished run once (:mod:`worker.service.telemetry`). Recording costs
a dictionary lookup and a locked add per metric: labelled children are cached here, so
``labels()`` (which builds and locks) runs once per label set per process.

Prefork: the parent serves the sum of its children's files (prometheus-client's
multiprocess mode), which must be chosen before ``prometheus_client`` is first imported:
``vrec worker --pool prefork --metrics-port N`` sets ``PROMETHEUS_MULTIPROC_DIR`` first.
"""

from __future__ import annotations

import os
import threading
from typing import Generic, TypeVar

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MAX_CODES = 50  # distinct vendor codes kept as label values per provider
MAX_CODE_LENGTH = 40

# Vendor calls take 0.1-2 s; a slot can be up to limiter_max_wait_seconds (30) away;
# preparing an image takes ~1 ms (it fits) to ~1 s (a 24 MP JPEG).
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
WAIT_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PREPARE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

M = TypeVar("M", Counter, Gauge, Histogram)


class _Children(Generic[M]):
    """A metric's labelled children, cached by label values (a benign race: ``labels()``
    returns the same child to every thread)."""

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._cache: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._cache.get(values)
        if child is None:
            child = self._cache[values] = self._metric.labels(*values)
        return child


_calls = _Children(
    Counter(
        "vrec_vendor_calls_total",
        "Vendor calls made, by the outcome of the answer.",
        ["provider", "outcome"],
    )
)
_billed = _Children(
    Counter("vrec_vendor_billed_calls_total", "Vendor calls the vendor bills for.", ["provider"])
)
_call_seconds = _Children(
    Histogram(
        "vrec_vendor_call_duration_seconds",
        "Time from sending a vendor request to its parsed answer.",
        ["provider"],
        buckets=CALL_BUCKETS,
    )
)
_throttled = _Children(
    Counter(
        "vrec_vendor_throttled_total",
        "Answers by which a vendor throttled us; each can cut the provider's shared rate (AIMD).",
        ["provider"],
    )
)
_errors = _Children(
    Counter(
        "vrec_job_errors_total",
        "Job runs that ended in an error, by category (an outcome) and vendor code.",
        ["provider", "category", "code"],
    )
)
_finished = _Children(
    Counter(
        "vrec_jobs_finished_total",
        "Jobs that reached a terminal status in this process.",
        ["provider", "status"],
    )
)
_wait = _Children(
    Histogram(
        "vrec_limiter_wait_seconds",
        "Time a call waited for its slot of the shared rate limit (and the in-flight cap).",
        ["provider"],
        buckets=WAIT_BUCKETS,
    )
)
_given_back = _Children(
    Counter(
        "vrec_limiter_given_back_total",
        "Jobs handed back unrun: the limiter's next slot was too far away, or it was down.",
        ["provider"],
    )
)
_rate = _Children(
    Gauge(
        "vrec_limiter_rate_ratio",
        "Share of the configured rate the provider may use now (1: no throttling penalty).",
        ["provider"],
        multiprocess_mode="mostrecent",  # shared state (Redis): every process sees the same
    )
)
_prepared = _Children(
    Counter(
        "vrec_images_prepared_total",
        "Images prepared for a provider: ok, invalid (refused) or error (request not built).",
        ["provider", "outcome"],
    )
)
_prepare_seconds = _Children(
    Histogram(
        "vrec_image_prepare_seconds",
        "CPU time of a job before its call: hash, probe, fit to the provider, sign.",
        ["provider"],
        buckets=PREPARE_BUCKETS,
    )
)

_codes: dict[str, set[str]] = {}
_codes_lock = threading.Lock()


def code_label(provider: str, code: str | None) -> str:
    """A vendor code as a label value: ``none`` for no code, ``other`` past
    :data:`MAX_CODES` distinct codes of one provider (a vendor inventing codes must not
    grow the series without bound)."""
    if not code:
        return "none"
    code = code[:MAX_CODE_LENGTH]
    seen = _codes.get(provider)
    if seen is not None and code in seen:
        return code
    with _codes_lock:
        seen = _codes.setdefault(provider, set())
        if code in seen or len(seen) < MAX_CODES:
            seen.add(code)
            return code
    return "other"


def image_prepared(provider: str, outcome: str, seconds: float) -> None:
    _prepared(provider, outcome).inc()
    _prepare_seconds(provider).observe(seconds)


def limiter_waited(provider: str, seconds: float) -> None:
    _wait(provider).observe(seconds)


def given_back(provider: str) -> None:
    _given_back(provider).inc()


def vendor_call(provider: str, outcome: str, seconds: float, *, billed: bool) -> None:
    _calls(provider, outcome).inc()
    _call_seconds(provider).observe(seconds)
    if billed:
        _billed(provider).inc()


def throttled(provider: str) -> None:
    _throttled(provider).inc()


def job_error(provider: str, category: str, code: str | None) -> None:
    _errors(provider, category, code_label(provider, code)).inc()


def job_finished(provider: str, status: str) -> None:
    _finished(provider, status).inc()


def rate_ratio(provider: str, factor: float) -> None:
    _rate(provider).set(factor)


_served = threading.Event()


def served() -> bool:
    """Whether this process (or, after a fork, its parent) serves metrics: the runtime
    keeps ``vrec_limiter_rate_ratio`` fresh only then."""
    return _served.is_set()


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multiprocess mode, if it is on."""
    return os.environ.get(MULTIPROC_ENV) or None


def serve(port: int, addr: str = "0.0.0.0") -> int:  # noqa: S104 - scraped from other hosts
    """Serve ``/metrics`` from a daemon thread of this process; the port bound (``port`` 0
    takes a free one). In multiprocess mode the answer sums every process's files."""
    registry: Collector = REGISTRY
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    server, _ = start_http_server(port, addr, registry)
    _served.set()
    return int(server.server_address[1])
