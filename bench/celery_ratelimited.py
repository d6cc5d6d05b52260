"""The baseline for bench/ratelimit.py: Celery's built-in ``rate_limit='10/s'``.

    celery -A bench.celery_ratelimited worker --pool=threads --concurrency=32 -Q bench_rl

One task makes the same vendor call a vrec job makes (read the file, ``imaging.prepare``,
the Tencent adapter's signed request, :func:`worker.http.send` on the process's shared
aiohttp session and event loop from :mod:`worker.runtime`), but is paced only by Celery's
``rate_limit``, which is a token bucket *per worker instance*: N workers send N times
the limit. Nothing is stored; the simulator's counters are the result.

Environment: ``BENCH_BROKER_URL`` (the benchmark uses Redis DB 12), ``BENCH_RATE_LIMIT``
(default ``10/s``), and the same ``VREC_*`` credentials and base URL as the vrec workers.
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

from worker import http, imaging
from worker.runtime import get_runtime

P = "tencent_vehicle_license"
QUEUE = "bench_rl"
RATE_LIMIT = os.environ.get("BENCH_RATE_LIMIT", "10/s")

app = Celery("bench_ratelimited", broker=os.environ.get("BENCH_BROKER_URL"))
# vrec's own delivery settings (worker/app.py), so only the pacing differs.
app.conf.update(
    task_ignore_result=True,
    task_acks_late=True,
    task_default_queue=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.vendor_call", rate_limit=RATE_LIMIT)  # type: ignore[untyped-decorator]
def vendor_call(path: str) -> int:
    """One Tencent VehicleLicenseOCR call for the image at ``path``; its HTTP status."""
    rt = get_runtime()  # this process's loop + aiohttp session, built on first use
    provider = rt.provider(P)
    prepared = imaging.prepare(Path(path).read_bytes(), provider.limits)
    request = provider.build_request(prepared, {})
    response = rt.run(http.send(rt.http, request, provider=P, timeout=provider.settings.timeout))
    return response.status
