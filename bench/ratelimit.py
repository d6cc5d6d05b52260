"""Benchmark: one provider held at its limit by every worker together, never over it.

    .venv/bin/python bench/ratelimit.py [--jobs 1000] [--workers 4] [--photos realistic|small]
        [--scenarios vrec,celery,celery-docs,single]

Against the vendor simulator (its own process) enforcing ``--limit`` (10) Tencent calls
in any trailing second, decided when each call arrives, with ``--latency`` per call
(``--latency-dist lognormal``: median 300 ms, 99th percentile 1500 ms, and a long tail
beyond it, as a real vendor answers; ``uniform``: 300-1500 ms), three scenarios:

``vrec``    ``--workers`` separate ``vrec worker`` processes (threads pool, ``--concurrency``
            each) sharing the Redis GCRA limiter; ``--jobs`` jobs through PostgreSQL + Redis.
``celery``  the same number of ``celery -A bench.celery_ratelimited worker`` processes
            (threads pool, same concurrency) paced only by Celery's ``rate_limit='10/s'``
            set on the task, as a user reading "the vendor allows 10/s" would: it is a
            token bucket per worker instance, so 4 workers may send 40/s; the same vendor
            call for ``--jobs`` images.
``celery-docs`` the same, with ``rate_limit`` set as Celery's documentation advises for
            several workers: the limit divided by the workers (``2.5/s`` each for 10/s).
``single``  one ``vrec worker`` process (``--single-concurrency`` threads) at a fixed
            1000 ms latency, ``--single-jobs`` jobs: can one process hold the limit when
            every call takes a second?

Images (``--photos``): ``realistic`` (the default), 12 MP JPEGs of 2-4 MB (3.3 MB on
average; made once into a cache folder, ``$VREC_BENCH_CACHE`` or ``~/.cache/vrec-bench``,
and made distinct per job by a JPEG comment), which vrec verifies by decoding and sends
as they are (4-5.3 MB of base64 against Tencent's 7 MB); ``small``: 200x120 licence
pages, the CPU-light case.

Memory: every worker process's RSS is sampled every 0.25 s (idle: once started, before
the jobs; peak: over the run). Target for vrec with realistic photos: each worker's
peak < 200 MB (a worker holds at most ``VREC_REQUEST_BUDGET_BYTES`` of prepared
requests, 32 MiB by default).

Figures per scenario, all the simulator's own (GET /__sim/stats?arrivals=1): calls,
throttled answers, the busiest trailing second (over the run, and within its first 10 s,
when the workers' start-up contends for the CPU), and the achieved rate: admitted calls
per second between the first and the last arrival, plus the same over the middle 80% of
that span (steady state). Targets (printed, never asserted): achieved >= 0.95 x limit,
0 throttled, never more than the limit in any second; for ``single``, achieved >= 0.95 x
limit.

Run time with the defaults: vrec ~1.7 min at ~9.7/s, celery ~1.7 min, celery-docs ~3.5
min (it reaches about half the limit), single ~35 s, plus ~10-30 s start-up and photos
each: about 9 minutes. ``--jobs 300`` takes 3-4 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from celery import Celery

from bench.common import (
    BASELINE_DB,
    BROKER_DB,
    LIMITER_DB,
    P,
    RateFigures,
    RssSampler,
    Workers,
    flush_redis,
    fresh_credentials,
    image_folder,
    parse_latency,
    pending_messages,
    photo_folder,
    rate_figures,
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

TARGET_SHARE = 0.95
TARGET_RSS_MB = 200.0  # each vrec worker's peak with realistic photos
TASK = "bench.vendor_call"  # bench/celery_ratelimited.py


@dataclass
class Result:
    name: str
    setup: str
    jobs: int
    limit: int
    figures: RateFigures
    wall: float
    outcomes: dict[str, int] = field(default_factory=dict)
    idle_rss: float = 0.0  # MB, the largest worker's once started, before any job
    peak_rss: float = 0.0  # MB, the largest any worker reached over the run
    median_rss: float = 0.0  # MB, the largest worker's, median over the run


def images(jobs: int, photos: str) -> contextlib.AbstractContextManager[list[str]]:
    return photo_folder(jobs) if photos == "realistic" else image_folder(jobs)


def vrec_scenario(
    name: str,
    *,
    jobs: int,
    workers: int,
    concurrency: int,
    latency: tuple[float, float],
    limit: int,
    margin: str | None,
    dump: str | None = None,
    dist: str = "uniform",
    photos: str = "realistic",
    request_budget: int | None = None,
    decode_budget: int | None = None,
) -> Result:
    credentials = fresh_credentials()
    flush_redis(BROKER_DB, LIMITER_DB)
    try:
        with (
            throwaway_database() as db,
            images(jobs, photos) as paths,
            simulator(credentials, latency_ms=latency, latency=dist, limit=limit) as sim,
        ):
            extra = {f"VREC_{P.upper()}__RATE": str(limit)}
            if margin is not None:
                extra["VREC_LIMITER_MARGIN"] = margin
            if request_budget is not None:
                extra["VREC_REQUEST_BUDGET_BYTES"] = str(request_budget)
            if decode_budget is not None:
                extra["VREC_DECODE_BUDGET_PIXELS"] = str(decode_budget)
            env = worker_env(credentials, sim, db, **extra)
            print(f"[{name}] starting {workers} vrec worker(s) ...", flush=True)
            with Workers(
                vrec_worker_cmd(concurrency), workers, env, redis_url(BROKER_DB), tag=name
            ) as procs:
                idle = max(procs.rss_bytes())
                print(f"[{name}] {jobs} jobs ...", flush=True)
                with RssSampler(procs) as rss:
                    run = run_vrec_batch(
                        env, paths, timeout=jobs / limit * 3 + 120, workers=procs, poll=0.2
                    )
            stats = sim_stats(sim, arrivals=True)
            if dump:
                Path(dump, f"{name}.json").write_text(json.dumps(stats))
            figures = rate_figures(stats)
    finally:
        flush_redis(BROKER_DB, LIMITER_DB)
    setup = (
        f"{workers} x `vrec worker --concurrency {concurrency}` (threads), "
        f"latency {describe(dist, latency)}"
    )
    if request_budget is not None:
        setup += f", VREC_REQUEST_BUDGET_BYTES={request_budget}"
    if decode_budget is not None:
        setup += f", VREC_DECODE_BUDGET_PIXELS={decode_budget}"
    outcomes = {k: v for k, v in run.counts.items() if v}
    mb = 2**20
    peak, median = rss.peak / mb, rss.median / mb
    return Result(
        name, setup, jobs, limit, figures, run.run_seconds, outcomes, idle / mb, peak, median
    )


def celery_scenario(
    name: str,
    *,
    per_worker: float,
    jobs: int,
    workers: int,
    concurrency: int,
    latency: tuple[float, float],
    limit: int,
    dump: str | None = None,
    dist: str = "uniform",
    photos: str = "realistic",
) -> Result:
    credentials = fresh_credentials()
    flush_redis(BASELINE_DB)
    try:
        with (
            images(jobs, photos) as paths,
            simulator(credentials, latency_ms=latency, latency=dist, limit=limit) as sim,
        ):
            # Nothing of vrec's storage or limiter: no database, no Redis limiter.
            env = worker_env(credentials, sim, "sqlite:///:memory:")
            del env["VREC_BROKER_URL"], env["VREC_REDIS_URL"]
            env["BENCH_BROKER_URL"] = redis_url(BASELINE_DB)
            env["BENCH_RATE_LIMIT"] = f"{per_worker:g}/s"
            cmd = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bench.celery_ratelimited",
                "worker",
                "--pool=threads",
                f"--concurrency={concurrency}",
                "-Q",
                "bench_rl",
                "--loglevel",
                "WARNING",
            ]
            print(f"[{name}] starting {workers} celery worker(s) ...", flush=True)
            with Workers(cmd, workers, env, redis_url(BASELINE_DB), tag=name) as procs:
                idle = max(procs.rss_bytes())
                print(f"[{name}] {jobs} tasks ...", flush=True)
                app = Celery("bench-send", broker=redis_url(BASELINE_DB))
                broker = redis.Redis.from_url(redis_url(BASELINE_DB))
                sampler = RssSampler(procs)
                with sampler:
                    try:
                        t0 = time.monotonic()
                        with app.producer_or_acquire() as producer:
                            for path in paths:
                                app.send_task(
                                    TASK, args=[path], queue="bench_rl", producer=producer
                                )

                        def done() -> bool:
                            procs.check_alive()
                            drained = pending_messages(broker, "bench_rl") == 0  # read first
                            if sim_stats(sim)["calls"] >= jobs:
                                return True
                            if drained:  # every task ran, and some made no call: they failed
                                raise RuntimeError(f"{name}: tasks failed\n{procs.logs()}")
                            return False

                        # Each task makes exactly one call (no retries): done at `jobs` arrivals.
                        wait_for(done, timeout=jobs / limit * 3 + 120, poll=0.2, what=name)
                        wall = time.monotonic() - t0
                        time.sleep(max(latency) / 1000 + 0.5)  # let the last answers go out
                    finally:
                        broker.close()
                        app.close()
            stats = sim_stats(sim, arrivals=True)
            if dump:
                Path(dump, f"{name}.json").write_text(json.dumps(stats))
            figures = rate_figures(stats)
    finally:
        flush_redis(BASELINE_DB)
    setup = (
        f"{workers} x `celery -A bench.celery_ratelimited worker --pool=threads "
        f"--concurrency={concurrency}`, rate_limit='{per_worker:g}/s' on each, "
        f"latency {describe(dist, latency)}"
    )
    mb = 2**20
    peak, median = sampler.peak / mb, sampler.median / mb
    return Result(name, setup, jobs, limit, figures, wall, {}, idle / mb, peak, median)


def report(results: list[Result], photos: str) -> None:
    print()
    what = (
        "12 MP JPEG photos of 2-4 MB (3.3 MB on average)"
        if photos == "realistic"
        else "200x120 licence pages"
    )
    print(f"images: {what}")
    print("All figures are the simulator's (GET /__sim/stats): it admits or refuses each call")
    print("when it arrives (at most `limit` admitted in any trailing second). achieved/s =")
    print("admitted calls per second between the first and the last arrival; steady/s = the")
    print("same over the middle 80% of that span. max/s = most arrivals in any trailing")
    print("second; max/s 0-10s = the same within the first 10 s of arrivals (start-up).")
    print()
    header = [
        "scenario",
        "jobs",
        "calls",
        "throttled",
        "max/s",
        "max/s 0-10s",
        "calls/s",
        "achieved/s",
        "steady/s",
        "achieved/limit",
        "wall s",
        "idle RSS MB",
        "median RSS MB",
        "peak RSS MB",
    ]
    rows = []
    for r in results:
        f = r.figures
        rows.append(
            [
                r.name,
                str(r.jobs),
                str(f.calls),
                str(f.throttled),
                str(f.max_per_second),
                str(f.first_seconds_max),
                f"{f.arrival_rate:.2f}",
                f"{f.accepted_rate:.2f}",
                f"{f.middle_rate:.2f}",
                f"{f.accepted_rate / r.limit:.3f}",
                f"{r.wall:.1f}",
                f"{r.idle_rss:.0f}",
                f"{r.median_rss:.0f}",
                f"{r.peak_rss:.0f}",
            ]
        )
    print(table(rows, header))
    print("idle RSS = the largest worker's once ready, before any job; peak = the most any")
    print("worker process reached during the run; median = the largest worker's, median")
    print("over the run (sampled every 0.25 s)")
    print()
    for r in results:
        f = r.figures
        print(f"{r.name}: {r.setup}; limit {r.limit}/s")
        if r.outcomes:
            print("  jobs: " + ", ".join(f"{k} {v}" for k, v in r.outcomes.items()))
        share = f.accepted_rate / r.limit
        print(f"  {verdict(share >= TARGET_SHARE)}  achieved/limit {share:.3f} >= {TARGET_SHARE}")
        if r.name == "vrec" and photos == "realistic":
            ok = r.peak_rss < TARGET_RSS_MB
            print(
                f"  {verdict(ok)}  worker peak RSS {r.peak_rss:.0f} MB < {TARGET_RSS_MB:.0f} MB "
                f"(idle {r.idle_rss:.0f} MB, median over the run {r.median_rss:.0f} MB)"
            )
        if r.name != "single":
            print(f"  {verdict(f.throttled == 0)}  throttled {f.throttled} == 0")
            print(
                f"  {verdict(f.max_per_second <= r.limit)}  max in any second "
                f"{f.max_per_second} <= {r.limit}"
            )


def describe(dist: str, latency: tuple[float, float]) -> str:
    if dist == "lognormal":
        return f"log-normal, median {latency[0]:g} ms, p99 {latency[1]:g} ms"
    return f"{latency[0]:g}-{latency[1]:g} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs (vrec) / tasks (celery)")
    parser.add_argument(
        "--photos",
        choices=("realistic", "small"),
        default="realistic",
        help="12 MP JPEGs of 2-4 MB, or 200x120 licence pages",
    )
    parser.add_argument("--workers", type=int, default=4, help="worker processes")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="threads per worker (vrec and celery)"
    )
    parser.add_argument("--limit", type=int, default=10, help="simulator limit and vrec rate")
    parser.add_argument(
        "--latency",
        type=parse_latency,
        default=(300.0, 1500.0),
        help="ms MEDIAN,P99 (lognormal) or LOW,HIGH (uniform)",
    )
    parser.add_argument("--latency-dist", choices=("lognormal", "uniform"), default="lognormal")
    parser.add_argument("--single-jobs", type=int, default=300, help="jobs for `single`")
    parser.add_argument("--single-latency", type=float, default=1000.0, help="ms for `single`")
    parser.add_argument(
        "--single-concurrency", type=int, default=32, help="threads of the `single` worker"
    )
    parser.add_argument("--margin", help="VREC_LIMITER_MARGIN for the vrec workers (0.03)")
    parser.add_argument(
        "--request-budget",
        type=int,
        help="VREC_REQUEST_BUDGET_BYTES for the vrec workers (32 MiB; 10**12: unbounded)",
    )
    parser.add_argument(
        "--decode-budget", type=int, help="VREC_DECODE_BUDGET_PIXELS for the vrec workers"
    )
    parser.add_argument(
        "--dump", metavar="DIR", help="write each scenario's simulator stats (with arrivals) here"
    )
    parser.add_argument(
        "--scenarios",
        default="vrec,celery,celery-docs,single",
        help="comma-separated: vrec,celery,celery-docs,single",
    )
    args = parser.parse_args()
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(wanted) - {"vrec", "celery", "celery-docs", "single"}
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")

    results: list[Result] = []
    with stop_on_sigterm():
        try:
            for scenario in wanted:
                if scenario == "vrec":
                    results.append(
                        vrec_scenario(
                            "vrec",
                            jobs=args.jobs,
                            workers=args.workers,
                            concurrency=args.concurrency,
                            latency=args.latency,
                            limit=args.limit,
                            margin=args.margin,
                            dump=args.dump,
                            dist=args.latency_dist,
                            photos=args.photos,
                            request_budget=args.request_budget,
                            decode_budget=args.decode_budget,
                        )
                    )
                elif scenario in ("celery", "celery-docs"):
                    # As set by a user per task (each worker's own bucket), or as Celery's
                    # docs advise for N workers: the limit divided by N.
                    per_worker = args.limit if scenario == "celery" else args.limit / args.workers
                    results.append(
                        celery_scenario(
                            scenario,
                            per_worker=per_worker,
                            jobs=args.jobs,
                            workers=args.workers,
                            concurrency=args.concurrency,
                            latency=args.latency,
                            limit=args.limit,
                            dump=args.dump,
                            dist=args.latency_dist,
                            photos=args.photos,
                        )
                    )
                else:
                    results.append(
                        vrec_scenario(
                            "single",
                            jobs=args.single_jobs,
                            workers=1,
                            concurrency=args.single_concurrency,
                            latency=(args.single_latency, args.single_latency),
                            limit=args.limit,
                            margin=args.margin,
                            dump=args.dump,
                            photos=args.photos,
                            request_budget=args.request_budget,
                            decode_budget=args.decode_budget,
                        )
                    )
        except KeyboardInterrupt:
            print("\ninterrupted: workers stopped, databases dropped", file=sys.stderr)
            if not results:
                raise SystemExit(130) from None
    report(results, args.photos)


if __name__ == "__main__":
    main()
