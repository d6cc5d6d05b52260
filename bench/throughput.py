"""Benchmark: end-to-end vrec jobs per second against Celery no-op tasks per second.

    .venv/bin/python bench/throughput.py [--jobs 2000] [--noops 5000] [--workers 2]

Both run on the very same worker processes: ``--workers`` x ``vrec worker --concurrency
--concurrency --include bench.celery_noop`` (threads pool, Redis DB 10 as broker, Redis
DB 11 as limiter, a throwaway PostgreSQL database), so app, pool, concurrency, broker and
acks-late settings are identical; only the task differs.

``noop``  ``--noops`` messages of a task that does nothing, published with one producer;
          timed from the first publish until the queue and Redis' unacked set are empty
          (acks are late, so "acked" means "ran").
``vrec``  ``--jobs`` distinct 200x120 JPEGs registered as a batch (registration timed
          separately), then dispatched and followed as ``vrec run`` does: claim with a
          lease, read, probe, prepare, sign, the shared limiter (Tencent rate set to 100000/s),
          the call to the simulator (no latency, no throttling, in this process), parse,
          and result + attempt + status written in one transaction. Timed from the first
          dispatch until every job is terminal (the follower polls every 50 ms).

Prints both rates and their ratio; target (printed, not asserted): vrec >= 0.25 x no-op.
Run time with the defaults: about 1 minute.
"""

from __future__ import annotations

import argparse
import sys
import time
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


def noop_rate(n: int, workers: Workers) -> tuple[float, float]:
    """(tasks/s, seconds) for ``n`` no-op tasks through the running workers."""
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
    return n / seconds, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="vrec jobs")
    parser.add_argument("--noops", type=int, default=5000, help="Celery no-op tasks")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=32, help="threads per worker")
    args = parser.parse_args()

    with stop_on_sigterm():
        try:
            figures = run(args)
        except KeyboardInterrupt:
            print("\ninterrupted: workers stopped, database dropped", file=sys.stderr)
            raise SystemExit(130) from None
    report(args, *figures)


def run(args: argparse.Namespace) -> tuple[float, float, float, float, float, dict[str, int]]:
    credentials = fresh_credentials()
    flush_redis(BROKER_DB, LIMITER_DB)
    try:
        with (
            throwaway_database() as db,
            image_folder(args.jobs) as paths,
            simulator(credentials, throttle=False) as sim,
        ):
            env = worker_env(
                credentials,
                sim,
                db,
                **{f"VREC_{P.upper()}__RATE": "100000"},  # the limiter still runs, never waits
            )
            cmd = vrec_worker_cmd(args.concurrency, "--include", "bench.celery_noop")
            print(f"starting {args.workers} vrec worker(s) ...", flush=True)
            with Workers(cmd, args.workers, env, redis_url(BROKER_DB), tag="tp") as procs:
                # Warm both paths (connections, pools, imports) before timing either.
                noop_rate(min(200, args.noops), procs)
                print(f"{args.noops} no-op tasks ...", flush=True)
                noop, noop_s = noop_rate(args.noops, procs)
                print(f"{args.jobs} vrec jobs ...", flush=True)
                run = run_vrec_batch(env, paths, timeout=args.jobs + 120, workers=procs, poll=0.05)
            calls = sim_stats(sim)["calls"]
    finally:
        flush_redis(BROKER_DB, LIMITER_DB)
    jobs_rate = args.jobs / run.run_seconds
    counts = {k: v for k, v in run.counts.items() if v}
    counts["vendor calls"] = calls
    return noop, noop_s, jobs_rate, run.run_seconds, run.submit_seconds, counts


def report(
    args: argparse.Namespace,
    noop: float,
    noop_s: float,
    jobs_rate: float,
    run_s: float,
    submit_s: float,
    counts: dict[str, int],
) -> None:
    print()
    setup = (
        f"{args.workers} x `vrec worker --concurrency {args.concurrency} "
        "--include bench.celery_noop` (threads pool), broker Redis, PostgreSQL; "
        "simulator in its own process, no latency, no throttling"
    )
    print(setup)
    rows = [
        ["Celery no-op tasks", str(args.noops), f"{noop_s:.2f}", f"{noop:.0f}"],
        ["vrec jobs end to end", str(args.jobs), f"{run_s:.2f}", f"{jobs_rate:.0f}"],
    ]
    print(table(rows, ["what", "n", "seconds", "per second"]))
    print(f"registration of {args.jobs} images (submit, not in the rate): {submit_s:.2f} s")
    print("vrec jobs: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    ratio = jobs_rate / noop
    print(f"ratio vrec / no-op: {ratio:.3f}")
    print(f"{verdict(ratio >= TARGET_RATIO)}  vrec jobs/s >= {TARGET_RATIO} x no-op tasks/s")


if __name__ == "__main__":
    main()
