"""Benchmark: the database side at 10k and at 1M jobs (PostgreSQL).

    .venv/bin/python bench/scale.py [--small] [--sizes 10000 1000000] [--urls 1000000]

For each size, a throwaway PostgreSQL database (dropped afterwards) is filled with that
many finished jobs by ``generate_series`` (:mod:`tests.support.bulk`: batches of 1,000,
one image, item, call and answer each, plate and licence readings) plus the same followed
batch of 1,000 jobs (600 pending, 200 queued, 200 running) at every size. So the two
sizes differ only by the history, and a figure that grows is a query reading it. Then,
each on one engine as a vrec process holds it, 20 rounds (the first 5 are shown apart:
psycopg would server-prepare a statement at its 5th execution, had models/db not turned
that off; the figure is the median of rounds 6-20):

- ``dispatch tick``: :func:`worker.dispatch.dispatch_once` over every provider (circuits,
  the due probe, in-flight counts, marking the 600 due jobs queued; the sender only
  collects ids, which are handed back to pending between rounds, untimed). Target: the
  1M tick <= 2x the 10k tick.
- ``reconcile``: :func:`worker.dispatch.reconcile_once` (nothing is stale: it finds
  nothing, as on most passes).
- ``follower``: :func:`worker.service.status.summary` of the followed batch without
  detail, what ``vrec run`` polls.
- lookups, the README's examples, each with another value every round: a plate in
  ``v_latest_plate`` (target < 10 ms at 1M), a plate prefix (``LIKE``), a VIN in
  ``v_vehicle_licenses``, one history batch of 1,000 jobs in ``v_batch_calls``.

Then registration memory: ``vrec run``'s registration (:func:`worker.service.submit.submit`)
of a CSV manifest of ``--urls`` URLs, and of 10,000 for comparison, each in its own
process on its own throwaway database: seconds, URLs/s and peak RSS, read by the child
from its own ``/proc/self/status`` (VmHWM: a fresh exec'd process, so the parent's size is
not in it). Target: < 150 MB at 1M URLs.

Run time with the defaults: about 20 minutes on the 2-core development machine, busy
(filling 1M jobs took 4.5 min; registering 1M URLs 14 min). ``--small``: 10k and 100k
jobs, 100k URLs, a few minutes. ``--skip-registration`` leaves the registration part out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from bench.common import table, throwaway_database, verdict
from models import queue
from models.db import Database
from tests.support.bulk import PROVIDERS, T0, fill, plate_of, vin_of
from tests.support.storage import settings_for
from worker.config import Settings
from worker.dispatch import dispatch_once, reconcile_once
from worker.service.status import summary

ROUNDS = 20
PREPARED_AFTER = 5  # psycopg's default prepare_threshold
REGISTER_CHILD = """
import json, sys, time
sys.path.insert(0, {repo!r})
from models.db import Database
from tests.support.storage import settings_for
from worker.service.submit import submit

def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

url, manifest = sys.argv[1], sys.argv[2]
before = hwm_kb()
db = Database(url)
started = time.perf_counter()
batch = submit(db, settings_for(url), [manifest], ["tianapi_plate"], {{}})
seconds = time.perf_counter() - started
db.dispose()
print(json.dumps({{"batch": batch, "seconds": seconds, "hwm_kb": hwm_kb(), "start_kb": before}}))
"""


def _timed(fn: Callable[[int], object]) -> tuple[list[float], list[float]]:
    """ms of each round before psycopg would prepare (1-5), and after (6-20)."""
    times = []
    for i in range(ROUNDS):
        started = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - started) * 1000)
    return times[:PREPARED_AFTER], times[PREPARED_AFTER:]


def measure(size: int) -> dict[str, Any]:
    """Every query figure at ``size`` history jobs, on its own throwaway database."""
    with throwaway_database() as url:
        started = time.perf_counter()
        db = Database(url)
        with db.engine.begin() as conn:
            followed = fill(conn, size)
        filled = time.perf_counter() - started
        with db.engine.connect() as conn:
            created = conn.execute(text("SELECT MIN(created_at) FROM jobs")).scalar()
        assert isinstance(created, datetime)
        now = created + timedelta(minutes=1)  # nothing is stale yet
        settings: Settings = settings_for(url).model_copy(
            update={"window_seconds": 600.0, "limiter_max_wait_seconds": 600.0}
        )
        sent: list[int] = []

        def tick(_: int) -> None:
            dispatch_once(db, lambda ids, _size: sent.extend(ids), settings, now)

        ticks = []  # each tick's jobs go back to pending afterwards, untimed
        for i in range(ROUNDS):
            t0 = time.perf_counter()
            tick(i)
            ticks.append((time.perf_counter() - t0) * 1000)
            assert len(sent) == 600, len(sent)
            with db.transaction() as session:
                queue.unqueue_jobs(session, sent, now)
            sent.clear()
        figures: dict[str, Any] = {"size": size, "fill_s": filled}
        figures["dispatch"] = (ticks[:PREPARED_AFTER], ticks[PREPARED_AFTER:])
        figures["reconcile"] = _timed(lambda _i: reconcile_once(db, settings, now))
        figures["follower"] = _timed(lambda _i: summary(db, followed, detail=False))
        batches = max(1, size // 1000)
        lookups = {
            "plate": (
                "SELECT source_uri, plate_no, color, provider FROM v_latest_plate "
                "WHERE plate_no = :v",
                lambda i: plate_of(size // 2 + 5 * i),
            ),
            "plate prefix": (
                "SELECT source_uri, plate_no, color, provider FROM v_latest_plate "
                "WHERE plate_no LIKE :v",
                lambda i: plate_of((size // 4 + 100 * i) % (size - 100))[:-2] + "%",
            ),
            "VIN": (
                "SELECT * FROM v_vehicle_licenses WHERE vin = :v",
                lambda i: vin_of(size // 2 + 5 * i + 3),
            ),
            "batch": (
                "SELECT batch_id, provider, calls, billed_calls, reused FROM v_batch_calls "
                "WHERE batch_id = :v",
                lambda i: 1 + (batches // 2 + i) % batches,
            ),
        }
        with db.engine.connect() as conn:
            for name, (sql, value) in lookups.items():
                statement = text(sql)

                def run(i: int, statement: Any = statement, value: Any = value) -> None:
                    rows = conn.execute(statement, {"v": value(i)}).all()
                    assert rows, (str(statement), value(i))

                figures[name] = _timed(run)
        db.dispose()
    return figures


def register(urls: int) -> dict[str, Any]:
    """Registration of a manifest of ``urls`` URLs in its own process."""
    with (
        throwaway_database() as url,
        tempfile.NamedTemporaryFile("w", suffix=".csv", prefix="vrec-scale-") as manifest,
    ):
        manifest.write("url\n")
        for i in range(urls):
            manifest.write(f"http://127.0.0.1:9/cam/{i // 1000:04d}/{i:07d}.jpg\n")
        manifest.flush()
        child = REGISTER_CHILD.format(repo=str(Path(__file__).resolve().parent.parent))
        done = subprocess.run(
            [sys.executable, "-c", child, url, manifest.name],
            check=True,
            capture_output=True,
            text=True,
        )
        figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        figures["urls"] = urls
        return figures


def _med(pair: tuple[list[float], list[float]]) -> float:
    return statistics.median(pair[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="10k and 100k jobs, 100k URLs")
    parser.add_argument("--sizes", type=int, nargs=2, default=None, metavar=("SMALL", "LARGE"))
    parser.add_argument("--urls", type=int, default=None)
    parser.add_argument("--skip-registration", action="store_true")
    args = parser.parse_args()
    small, large = args.sizes or ((10_000, 100_000) if args.small else (10_000, 1_000_000))
    urls = args.urls or (100_000 if args.small else 1_000_000)
    print(f"providers: {', '.join(PROVIDERS)}; jobs created at {T0}")

    results = []
    for size in (small, large):
        figures = measure(size)
        print(f"filled {size:,} history jobs in {figures['fill_s']:.0f} s")
        results.append(figures)
    lo, hi = results
    rows = []
    for name in ("dispatch", "reconcile", "follower", "plate", "plate prefix", "VIN", "batch"):
        first = ", ".join(f"{t:.1f}" for t in hi[name][0])
        rows.append(
            [
                name,
                f"{_med(lo[name]):.2f}",
                f"{_med(hi[name]):.2f}",
                f"{_med(hi[name]) / _med(lo[name]):.2f}",
                f"{max(hi[name][1]):.1f}",
                first,
            ]
        )
    print()
    print(f"ms per call, median of rounds 6-20 (past psycopg's 5th), {small:,} vs {large:,}")
    header = ["query", f"{small:,}", f"{large:,}", "ratio", f"max {large:,}"]
    print(table(rows, [*header, f"rounds 1-5 at {large:,}"]))
    ratio = _med(hi["dispatch"]) / _med(lo["dispatch"])
    print(f"dispatch tick at {large:,} <= 2x {small:,}: {ratio:.2f}x {verdict(ratio <= 2.0)}")
    plate = _med(hi["plate"])
    print(f"plate lookup at {large:,} < 10 ms: {plate:.2f} ms {verdict(plate < 10.0)}")

    if args.skip_registration:
        return
    print()
    registered = [register(10_000), register(urls)]
    rows = [
        [
            f"{r['urls']:,}",
            f"{r['seconds']:.1f}",
            f"{r['urls'] / r['seconds']:,.0f}",
            f"{r['hwm_kb'] / 1024:.0f}",
            f"{r['start_kb'] / 1024:.0f}",
        ]
        for r in registered
    ]
    print("registration of a URL manifest, its own process (VmHWM of the child)")
    print(table(rows, ["URLs", "seconds", "URLs/s", "peak RSS MB", "RSS at start MB"]))
    peak = registered[1]["hwm_kb"] / 1024
    print(f"registration of {urls:,} URLs: peak RSS < 150 MB: {peak:.0f} MB {verdict(peak < 150)}")


if __name__ == "__main__":
    main()
