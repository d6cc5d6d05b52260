"""Benchmark: end-to-end vrec jobs per second against Celery no-op tasks per second.

    .venv/bin/python bench/throughput.py [--jobs 2000] [--noops 5000] [--workers 2]

Every vrec figure is compared with Celery no-op tasks on the very same worker processes:
``vrec worker --concurrency 32 --include bench.celery_noop`` (threads pool, Redis DB 10
as broker, Redis DB 11 as limiter, a throwaway PostgreSQL database), so app, pool,
concurrency, broker and acks-late settings are identical; only the task differs.

``noop``       ``--noops`` messages of a task that does nothing, published with one
               producer; timed from the first publish until the queue and Redis' unacked
               set are empty (acks are late, so "acked" means "ran").
``1/message``  the headline: ``--jobs`` distinct 200x120 JPEGs registered as a batch
               (registration timed separately), then dispatched and followed as ``vrec
               run`` does, one job id per message (``VREC_CHUNK_SIZE=1``: what every
               provider at vendor rates like 5-10/s gets, see ``worker.dispatch.chunk``):
               claim with a lease, read, probe, prepare, sign, the shared limiter (Tencent
               rate set to 100000/s: it runs, never waits), the attempt journaled, the call
               to the simulator (no latency, no throttling, its own process), parse, and
               result + attempt + status written in one transaction. Timed from the first
               dispatch until every job is terminal (the follower polls every 50 ms).
``8/message``  the same with 8 job ids per message (``VREC_CHUNK_SIZE`` 8, the default),
               what only a provider at 160/s or more gets (2 per message from 40/s).
``one worker`` one worker process alone (the same command line), no-op and 1/message:
               what a single process holds, e.g. 5 vendors x 3 credentials x 10/s = 150/s.

Targets (printed, not asserted): 1/message >= 0.25 x no-op on the same workers; one
worker at 1/message >= 150 jobs/s. Run time with the defaults: about 2-3 minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from celery import Celery

from bench.celery_noop import NAME as NOOP
from bench.common import (
    BROKER_DB,
    LIMITER_DB,
    P,
    Workers,
    flush_redis,
    fresh_credentials,
    image_folder,
    pending_messages,
    redis_url,
    run_vrec_batch,
    sim_stats,
    simulator,
    stop_on_sigterm,
    table,
    throwaway_database,
    verdict,
    vrec_worker_cmd,
    wait_for,
    worker_env,
)
from worker.app import QUEUE

TARGET_RATIO = 0.25
TARGET_ONE_WORKER = 150.0  # jobs/s of one process at one job per message


def noop_rate(n: int, workers: Workers) -> tuple[float, float, float]:
    """(tasks/s, seconds, workers' CPU ms per task) for ``n`` no-op tasks through the
    running workers."""
    cpu0 = workers.cpu_seconds()
    app = Celery("bench-noop", broker=redis_url(BROKER_DB))
    client = redis.Redis.from_url(redis_url(BROKER_DB))
    try:
        t0 = time.monotonic()
        with app.producer_or_acquire() as producer:
            for _ in range(n):
                app.send_task(NOOP, queue=QUEUE, producer=producer)

        def drained() -> bool:
            workers.check_alive()
            return pending_messages(client, QUEUE) == 0

        wait_for(drained, timeout=n / 10 + 60, poll=0.005, what="no-op tasks")
        seconds = time.monotonic() - t0
    finally:
        client.close()
        app.close()
    return n / seconds, seconds, (workers.cpu_seconds() - cpu0) * 1000 / n


@dataclass
class Row:
    what: str
    workers: int
    n: int
    seconds: float
    noop: float  # no-op tasks/s on the same workers, measured just before
    cpu_ms: float  # the workers' CPU time per job
    noop_cpu_ms: float  # ... per no-op task
    counts: dict[str, int]

    @property
    def rate(self) -> float:
        return self.n / self.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="vrec jobs per row")
    parser.add_argument("--noops", type=int, default=5000, help="Celery no-op tasks")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=32, help="threads per worker")
    parser.add_argument("--no-single", action="store_true", help="skip the one-worker rows")
    args = parser.parse_args()

    with stop_on_sigterm():
        try:
            rows, submit_s = run(args)
        except KeyboardInterrupt:
            print("\ninterrupted: workers stopped, database dropped", file=sys.stderr)
            raise SystemExit(130) from None
    report(args, rows, submit_s)


def run(args: argparse.Namespace) -> tuple[list[Row], float]:
    credentials = fresh_credentials()
    flush_redis(BROKER_DB, LIMITER_DB)
    rows: list[Row] = []
    submit_s = 0.0
    seed = 0  # each batch its own images: the same image's answer would be reused
    try:
        with throwaway_database() as db, simulator(credentials, throttle=False) as sim:
            env = worker_env(
                credentials,
                sim,
                db,
                **{f"VREC_{P.upper()}__RATE": "100000"},  # the limiter still runs, never waits
            )
            cmd = vrec_worker_cmd(args.concurrency, "--include", "bench.celery_noop")
            plan = [(args.workers, [("1/message", 1), ("8/message", 8)])]
            if not args.no_single and args.workers != 1:
                plan.append((1, [("1/message", 1)]))
            for n_workers, batches in plan:
                print(f"starting {n_workers} vrec worker(s) ...", flush=True)
                with Workers(cmd, n_workers, env, redis_url(BROKER_DB), tag="tp") as procs:
                    # Warm both paths (connections, pools, imports) before timing either.
                    noop_rate(min(200, args.noops), procs)
                    warm_env = {**env, "VREC_CHUNK_SIZE": "1"}
                    with image_folder(100, first=seed) as paths:
                        run_vrec_batch(warm_env, paths, timeout=120, workers=procs, poll=0.05)
                    seed += 100
                    print(f"  {args.noops} no-op tasks ...", flush=True)
                    noop, _, noop_cpu = noop_rate(args.noops, procs)
                    for what, size in batches:
                        print(f"  {args.jobs} vrec jobs, {what} ...", flush=True)
                        batch_env = {**env, "VREC_CHUNK_SIZE": str(size)}
                        calls_before = sim_stats(sim)["calls"]
                        cpu0 = procs.cpu_seconds()
                        with image_folder(args.jobs, first=seed) as paths:
                            done = run_vrec_batch(
                                batch_env,
                                paths,
                                timeout=args.jobs + 120,
                                workers=procs,
                                poll=0.05,
                            )
                        seed += args.jobs
                        cpu_ms = (procs.cpu_seconds() - cpu0) * 1000 / args.jobs
                        counts = {k: v for k, v in done.counts.items() if v}
                        counts["vendor calls"] = sim_stats(sim)["calls"] - calls_before
                        submit_s = max(submit_s, done.submit_seconds)
                        row = Row(
                            what,
                            n_workers,
                            args.jobs,
                            done.run_seconds,
                            noop,
                            cpu_ms,
                            noop_cpu,
                            counts,
                        )
                        rows.append(row)
    finally:
        flush_redis(BROKER_DB, LIMITER_DB)
    return rows, submit_s


def report(args: argparse.Namespace, rows: list[Row], submit_s: float) -> None:
    print()
    print(
        f"`vrec worker --concurrency {args.concurrency} --include bench.celery_noop` "
        "(threads pool), broker Redis, PostgreSQL; simulator in its own process, no "
        "latency, no throttling; each vrec row against the no-op rate of the same workers"
    )
    header = [
        "vrec jobs",
        "workers",
        "n",
        "seconds",
        "jobs/s",
        "no-op tasks/s",
        "ratio",
        "CPU ms/job",
        "CPU ms/no-op",
    ]
    lines = [
        [
            r.what,
            str(r.workers),
            str(r.n),
            f"{r.seconds:.2f}",
            f"{r.rate:.0f}",
            f"{r.noop:.0f}",
            f"{r.rate / r.noop:.3f}",
            f"{r.cpu_ms:.1f}",
            f"{r.noop_cpu_ms:.1f}",
        ]
        for r in rows
    ]
    print(table(lines, header))
    print(
        "CPU ms = the worker processes' user + system time over the row / its jobs (or "
        "tasks): what a job costs whatever else shares the cores"
    )
    print(f"registration of {args.jobs} images (submit, not in the rates): <= {submit_s:.2f} s")
    for r in rows:
        counts = ", ".join(f"{k} {v}" for k, v in r.counts.items())
        print(f"{r.what}, {r.workers} worker(s): {counts}")
    headline = next(r for r in rows if r.what == "1/message" and r.workers == args.workers)
    ratio = headline.rate / headline.noop
    print(
        f"{verdict(ratio >= TARGET_RATIO)}  one job per message: {headline.rate:.0f} jobs/s "
        f"= {ratio:.3f} x no-op >= {TARGET_RATIO}"
    )
    single = [r for r in rows if r.workers == 1 and r.what == "1/message"]
    if single:
        s = single[0]
        print(
            f"{verdict(s.rate >= TARGET_ONE_WORKER)}  one worker process, one job per "
            f"message: {s.rate:.0f} jobs/s >= {TARGET_ONE_WORKER:.0f}"
        )


if __name__ == "__main__":
    main()
