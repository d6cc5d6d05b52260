"""Benchmark: the shared limiter under faults (issue 13), one batch per part.

    .venv/bin/python bench/faults.py [--jobs 2000] [--workers 4] [--parts a,b,c]

Each part runs ``--jobs`` Tencent jobs through ``--workers`` separate ``vrec worker``
processes (threads pool, ``--concurrency`` each) on a throwaway PostgreSQL database, Redis
DB 10 as broker and DB 11 as the shared limiter, against the vendor simulator (its own
process) with ``--latency`` (50-300 ms) per call and a per-second limit decided at each
call's arrival. Figures are the simulator's own (GET /__sim/stats?arrivals=1).

``a``  throttling: the vendor allows ``--limit`` (12) calls/s, vrec is configured at
       ``--rate`` (15): the normal case for the four vendors that publish no limit.
       Achieved rate (admitted calls/s between the first and the last arrival) / vendor
       limit, target >= 0.90; throttled share of all calls, target < 2%.
``b``  a lost limiter state: vrec configured at the vendor's limit (``--limit``), and the
       limiter's Redis DB flushed (FLUSHDB of DB 11) once ``--flush-at`` (30%) of the jobs
       are terminal. The most calls in any trailing second as the vendor counted them
       (every arrival, throttled or not), target <= the limit.

``c``  killed workers: vrec configured at the vendor's limit, one worker SIGKILLed (and a
       new one started in its place) every ``--kill-every`` (10) s. Leases last 60 s and
       lost messages come back after 60 s (``VREC_LEASE_SECONDS``,
       ``VREC_QUEUED_TIMEOUT_SECONDS``; 300 and 900 by default), so stranded jobs run
       again within the batch. Attempt rows in the database / calls the vendor counted,
       target 1.00; jobs not terminal at the end and jobs with two results, target 0.

A part is a :class:`Part`: a hook that acts on :class:`Run` (its workers, its database)
as the batch progresses, and figures read after it. Targets are printed with PASS/MISS,
never asserted. Run time with the defaults: about 3.5 minutes per part (2,000 jobs at
~11.5/s; (c) a minute more), plus ~15 s of start-up each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BROKER_DB,
    LIMITER_DB,
    BatchRun,
    P,
    SimulatorProcess,
    Workers,
    flush_redis,
    fresh_credentials,
    image_folder,
    parse_latency,
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
    worker_env,
)
from worker.lifecycle import TERMINAL
from worker.simulator.server import busiest_window

TARGET_SHARE = 0.90  # (a) achieved rate / vendor limit
TARGET_THROTTLED = 0.02  # (a) throttled calls / calls


@dataclass
class Run:
    """One part's batch while it runs: what a part's hook may act on."""

    jobs: int
    database_url: str
    sim: SimulatorProcess
    workers: Workers
    env: dict[str, str]


Hook = Callable[[Run, dict[str, int]], None]  # called at every poll with jobs by status


@dataclass
class Finished:
    """A part's batch, done: read its figures before the database is dropped."""

    run: Run
    batch: BatchRun
    stats: dict[str, Any]  # the simulator's, with every arrival


def terminal(counts: dict[str, int]) -> int:
    return sum(counts.get(status.value, 0) for status in TERMINAL)


@contextlib.contextmanager
def batch(
    name: str,
    args: argparse.Namespace,
    *,
    rate: float,
    hook: Hook | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Finished]:
    """``args.jobs`` jobs through ``args.workers`` workers at ``rate`` against a simulator
    allowing ``args.limit`` calls/s; yields once every job is terminal."""
    credentials = fresh_credentials()
    flush_redis(BROKER_DB, LIMITER_DB)
    try:
        with (
            throwaway_database() as db,
            image_folder(args.jobs) as paths,
            simulator(credentials, latency_ms=args.latency, limit=args.limit) as sim,
        ):
            extra = {f"VREC_{P.upper()}__RATE": f"{rate:g}", **(env or {})}
            if args.margin is not None:
                extra["VREC_LIMITER_MARGIN"] = args.margin
            env = worker_env(credentials, sim, db, **extra)
            print(f"[{name}] starting {args.workers} vrec worker(s) ...", flush=True)
            cmd = vrec_worker_cmd(args.concurrency)
            with Workers(cmd, args.workers, env, redis_url(BROKER_DB), tag=name) as procs:
                run = Run(args.jobs, db, sim, procs, env)
                print(f"[{name}] {args.jobs} jobs ...", flush=True)
                done = run_vrec_batch(
                    env,
                    paths,
                    timeout=args.jobs / min(rate, args.limit) * 3 + 120,
                    workers=procs,
                    poll=0.2,
                    on_progress=(lambda counts: hook(run, counts)) if hook else None,
                )
            stats = sim_stats(sim, arrivals=True)
            if args.dump:
                Path(args.dump, f"{name}.json").write_text(json.dumps(stats))
            yield Finished(run, done, stats)
    finally:
        flush_redis(BROKER_DB, LIMITER_DB)


@dataclass
class Figure:
    what: str
    value: str
    target: str = ""  # empty: shown for context, no verdict
    ok: bool | None = None


@dataclass
class Report:
    part: str
    setup: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def context(finished: Finished) -> list[Figure]:
    """Figures every part shows for context: the calls and how they went."""
    f = rate_figures(finished.stats)
    outcomes = ", ".join(f"{k} {v}" for k, v in finished.batch.counts.items() if v)
    return [
        Figure("calls (vendor's count)", f"{f.calls} for {finished.run.jobs} jobs"),
        Figure("throttled", str(f.throttled)),
        Figure("achieved / steady rate", f"{f.accepted_rate:.2f} / {f.middle_rate:.2f} /s"),
        Figure("most calls in any second (first 10 s)", str(f.first_seconds_max)),
        Figure("jobs", outcomes),
        Figure("wall", f"{finished.batch.run_seconds:.1f} s"),
    ]


def throttling(args: argparse.Namespace) -> Report:
    """(a) Configured above the vendor's real limit: how close to it, how few throttled."""
    with batch("a", args, rate=args.rate) as finished:
        f = rate_figures(finished.stats)
    share = f.accepted_rate / args.limit
    throttled = f.throttled / f.calls if f.calls else 0.0
    setup = f"vendor limit {args.limit}/s, vrec configured at {args.rate:g}/s"
    return Report(
        "a",
        setup,
        [
            Figure(
                "achieved rate / vendor limit",
                f"{share:.3f} ({f.accepted_rate:.2f}/s)",
                f">= {TARGET_SHARE:.2f}",
                share >= TARGET_SHARE,
            ),
            Figure(
                "throttled share of calls",
                f"{throttled:.2%} ({f.throttled} of {f.calls})",
                f"< {TARGET_THROTTLED:.0%}",
                throttled < TARGET_THROTTLED,
            ),
            *context(finished),
        ],
    )


def flush(args: argparse.Namespace) -> Report:
    """(b) The limiter's state lost mid-batch: does the vendor ever see more than N?"""
    flushed: list[tuple[float, int]] = []  # (wall clock, jobs terminal then)

    def flush_once(run: Run, counts: dict[str, int]) -> None:
        done = terminal(counts)
        if not flushed and done >= args.flush_at * run.jobs:
            flush_redis(LIMITER_DB)
            flushed.append((time.time(), done))

    with batch("b", args, rate=args.limit, hook=flush_once) as finished:
        f = rate_figures(finished.stats)
        arrivals = finished.stats["arrivals"]
    setup = (
        f"vendor limit {args.limit}/s, vrec configured at {args.limit}/s; FLUSHDB of the "
        f"limiter's Redis DB {LIMITER_DB} at {args.flush_at:.0%} of the jobs"
    )
    report = Report("b", setup)
    if not flushed:
        report.notes.append("the batch ended before the flush: no figure")
        return report
    at, done = flushed[0]
    # Slots reserved before the flush come due up to the max wait (30 s) after it; the
    # run before the flush is the same setup without one.
    before = [t for t in arrivals if t <= at]
    after = [t for t in arrivals if at - 1 < t <= at + 30]
    report.figures = [
        Figure(
            "most calls in any second (vendor's count)",
            str(f.max_per_second),
            f"<= {args.limit}",
            f.max_per_second <= args.limit,
        ),
        Figure("  of them before the flush", str(busiest_window(before))),
        Figure("  from 1 s before it to 30 s after", str(busiest_window(after))),
        Figure("flushed at", f"{done} of {args.jobs} jobs terminal"),
        *context(finished),
    ]
    report.notes += [
        f"FLUSHDB of DB {LIMITER_DB}, the limiter's own DB, is what a flush of its Redis "
        f"means to the limiter (every key of its state gone); the broker (DB {BROKER_DB}) "
        "is left alone, as what a FLUSHALL does to the broker is not the limiter's part.",
        "One call too many in a second, as often before the flush as after it, is the "
        "jitter budget (VREC_LIMITER_MARGIN): a call held up by more than half of it "
        "after its slot's check, on a loaded machine.",
    ]
    return report


def kills(args: argparse.Namespace) -> Report:
    """(c) Workers SIGKILLed as they work: is every call the vendor saw in ``attempts``,
    every job finished, no job answered twice?"""
    killed: list[float] = []
    started = time.monotonic()

    def kill_one(run: Run, counts: dict[str, int]) -> None:
        last = killed[-1] if killed else started
        if time.monotonic() - last >= args.kill_every and terminal(counts) < run.jobs:
            run.workers.kill_and_replace(len(killed) % len(run.workers.procs))
            killed.append(time.monotonic())

    env = {"VREC_LEASE_SECONDS": "60", "VREC_QUEUED_TIMEOUT_SECONDS": "60"}
    with batch("c", args, rate=args.limit, hook=kill_one, env=env) as finished:
        stored = stored_calls(finished.run.database_url)
        f = rate_figures(finished.stats)
    ratio = stored.attempts / f.calls if f.calls else 0.0
    lost_jobs = finished.run.jobs - terminal(finished.batch.counts)
    setup = (
        f"vendor limit {args.limit}/s, vrec configured at {args.limit}/s; a worker "
        f"SIGKILLed every {args.kill_every:g} s"
    )
    return Report(
        "c",
        setup,
        [
            Figure(
                "attempt rows / calls the vendor counted",
                f"{ratio:.4f} ({stored.attempts} / {f.calls})",
                "1.00",
                stored.attempts == f.calls,
            ),
            Figure("jobs not terminal at the end", str(lost_jobs), "0", lost_jobs == 0),
            Figure("jobs with two results", str(stored.doubled), "0", stored.doubled == 0),
            Figure("workers killed", str(len(killed))),
            Figure("calls recorded lost (billing unknown)", str(stored.lost)),
            *context(finished),
        ],
        [
            "A call is written down (attempts, in_flight) as its limiter slot comes due, "
            "then sent (a slot lost to a slow write has its row withdrawn before the next "
            "is reserved); a worker killed in the milliseconds between row and request "
            "leaves a row the vendor never saw: the ratio's only way to exceed 1.",
        ],
    )


@dataclass(frozen=True)
class StoredCalls:
    attempts: int
    lost: int
    doubled: int  # jobs with more than one result


def stored_calls(database_url: str) -> StoredCalls:
    """What the database holds of the batch's calls and answers (one batch per database)."""
    from sqlalchemy import text

    from models.db import Database

    with Database(database_url) as db, db.transaction() as session:
        attempts, lost = session.execute(
            text("SELECT COUNT(*), COUNT(*) FILTER (WHERE outcome = 'lost') FROM attempts")
        ).one()
        doubled = session.execute(
            text(
                "SELECT COUNT(*) FROM (SELECT job_id FROM results GROUP BY job_id "
                "HAVING COUNT(*) > 1) d"
            )
        ).scalar_one()
    return StoredCalls(int(attempts), int(lost), int(doubled))


@dataclass(frozen=True)
class Part:
    key: str
    title: str
    run: Callable[[argparse.Namespace], Report]


PARTS = {
    part.key: part
    for part in (
        Part("a", "throttling: vendor limit below the configured rate", throttling),
        Part("b", "limiter state lost mid-batch (FLUSHDB of its Redis DB)", flush),
        Part("c", "workers SIGKILLed mid-batch", kills),
    )
}


def show(reports: list[Report], args: argparse.Namespace) -> None:
    print()
    print(
        f"{args.workers} x `vrec worker --concurrency {args.concurrency}` (threads), "
        f"PostgreSQL, Redis; simulator latency {args.latency[0]:g}-{args.latency[1]:g} ms; "
        f"limiter margin {args.margin or '0.03 (default)'}. "
        "Figures are the simulator's: it admits a call if fewer than `limit` were admitted "
        "in the trailing second when it arrives; 'most calls in any second' counts every "
        "arrival."
    )
    for report in reports:
        print()
        print(f"({report.part}) {PARTS[report.part].title}: {report.setup}")
        rows = [
            [fig.what, fig.value, fig.target, "" if fig.ok is None else verdict(fig.ok)]
            for fig in report.figures
        ]
        if rows:
            print(table(rows, ["figure", "value", "target", ""]))
        for note in report.notes:
            print(f"  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per part")
    parser.add_argument("--workers", type=int, default=4, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=16, help="threads per worker")
    parser.add_argument("--limit", type=int, default=12, help="the vendor's calls/s")
    parser.add_argument("--rate", type=float, default=15.0, help="vrec's rate for (a)")
    parser.add_argument("--latency", type=parse_latency, default=(50.0, 300.0), help="ms LO,HI")
    parser.add_argument("--flush-at", type=float, default=0.3, help="(b): share of jobs done")
    parser.add_argument("--kill-every", type=float, default=10.0, help="(c): seconds")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated: a,b,c")
    parser.add_argument("--margin", help="VREC_LIMITER_MARGIN for the workers (0.03)")
    parser.add_argument("--dump", metavar="DIR", help="write each part's simulator stats here")
    args = parser.parse_args()
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(wanted) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")

    reports: list[Report] = []
    with stop_on_sigterm():
        try:
            for key in wanted:
                reports.append(PARTS[key].run(args))
        except KeyboardInterrupt:
            print("\ninterrupted: workers stopped, databases dropped", file=sys.stderr)
            if not reports:
                raise SystemExit(130) from None
    show(reports, args)


if __name__ == "__main__":
    main()
