"""Benchmark: the back-office operations at the sizes users have.

    .venv/bin/python bench/backoffice.py [--rows 1000000] [--answered 10000]

All on a throwaway PostgreSQL database, loopback only:

``export``    a batch of N answered jobs (each with a plate reading) is seeded with SQL, then
              ``vrec export BATCH --format csv -o FILE`` runs as its own process, at N/10 and
              at N rows: rows/s and that process's peak RSS (its VmHWM, bench/peak.py), so the
              two RSS figures show whether memory grows with the rows. Targets: >= 50,000
              rows/s, peak RSS < 150 MB and flat (1M within 10% of 100k).
``reprocess`` ``reprocess --query "SELECT id AS image_id FROM images"`` over the N seeded
              images for another provider, timed in this process from the query to the
              committed batch: jobs/s. Target >= 20,000 jobs/s.
``reuse``     ``--answered`` distinct JPEG files registered and their jobs answered (seeded,
              as if read yesterday), then the same folder through a real ``vrec run`` on
              PostgreSQL with the embedded worker, against the simulator: the vendor calls
              the simulator counted. Target 0.

Run time with the defaults: a few minutes (seeding a million rows is most of it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text

from bench.common import (
    child_env,
    fresh_credentials,
    image_folder,
    sim_stats,
    simulator,
    stop_on_sigterm,
    table,
    throwaway_database,
    verdict,
)
from models.db import Database
from worker.service.reprocess import reprocess
from worker.service.submit import submit
from worker.settings import settings_from_env
from worker.simulator.environment import base_urls

P = "tianapi_plate"
PEAK = Path(__file__).resolve().parent / "peak.py"
EXPORT_RATE, EXPORT_RSS_MB, REPROCESS_RATE = 50_000, 150, 20_000


def seed(url: str, rows: int) -> int:
    """A batch of ``rows`` images x one provider, every job answered with a plate: built
    with set-based SQL (what registration and workers would write, minus the work)."""
    with Database(url) as db, db.transaction() as s:
        batch = s.execute(
            text(
                "INSERT INTO batches (label, sources, created_at) "
                "VALUES ('seed', '[]', now()) RETURNING id"
            )
        ).scalar_one()
        s.execute(
            text(
                "INSERT INTO images (sha256, bytes, width, height, format, created_at) "
                "SELECT md5(g::text) || md5((g + 1)::text), 100000, 1600, 1200, 'JPEG', now() "
                "FROM generate_series(1, :n) g"
            ),
            {"n": rows},
        )
        s.execute(
            text(
                "INSERT INTO items (batch_id, image_id, uri, created_at) "
                "SELECT :b, id, '/archive/2026/' || id || '.jpg', now() FROM images"
            ),
            {"b": batch},
        )
        s.execute(
            text(
                "INSERT INTO jobs (batch_id, image_id, provider, options, options_key, status, "
                "attempts, retries, created_at, updated_at, finished_at) "
                "SELECT :b, id, :p, '{}', '', 'succeeded', 1, 0, now(), now(), now() FROM images"
            ),
            {"b": batch, "p": P},
        )
        s.execute(
            text(
                "INSERT INTO results (job_id, attempt, image_id, provider, outcome, raw, "
                "warnings, created_at) SELECT id, 1, image_id, provider, 'succeeded', "
                "'{\"code\": 200}', '[]', now() FROM jobs"
            )
        )
        s.execute(
            text(
                "INSERT INTO plate_readings (result_id, job_id, image_id, provider, position, "
                "plate_no, color) SELECT id, job_id, image_id, provider, 0, "
                "'粤B' || lpad((id % 100000)::text, 5, '0'), 'blue' FROM results"
            )
        )
    settle(url)
    return int(batch)


def settle(url: str) -> None:
    """The database as a user's would be after loading it: vacuumed (hint bits and the
    visibility map set, as autovacuum would) and checkpointed, so that the timed command
    neither writes the seed's hint bits nor pays for the seed's checkpoint."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("VACUUM (ANALYZE)"))
            conn.execute(text("CHECKPOINT"))
    finally:
        engine.dispose()


def export_run(url: str, batch: int) -> tuple[int, float, float]:
    """``vrec export`` of the batch in its own process: (rows, seconds, peak RSS in MB)."""
    env = child_env({})
    env["VREC_DATABASE_URL"] = url
    with tempfile.TemporaryDirectory(prefix="vrec-bench-export-") as tmp:
        csv_path, peak = Path(tmp, "rows.csv"), Path(tmp, "peak")
        cmd = [sys.executable, str(PEAK), str(peak), "export", str(batch), "--format", "csv"]
        started = time.perf_counter()
        done = subprocess.run(
            [*cmd, "-o", str(csv_path)], env=env, capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0 or not peak.exists():
            raise RuntimeError(f"vrec export failed ({done.returncode}): {done.stderr[-2000:]}")
        with open(csv_path, encoding="utf-8") as fh:
            rows = sum(1 for _ in fh) - 1
        return rows, seconds, int(peak.read_text()) / 2**20


def bench_export(rows: int) -> list[list[str]]:
    figures = []
    for n in (rows // 10, rows):
        with throwaway_database() as url:
            batch = seed(url, n)
            got, seconds, rss = export_run(url, batch)
            assert got == n, f"exported {got} rows of {n}"
            figures.append((n, got / seconds, rss))
    (small, small_rate, small_rss), (big, rate, rss) = figures
    flat = rss <= small_rss * 1.10
    ok = rate >= EXPORT_RATE and rss < EXPORT_RSS_MB and flat
    return [
        [f"export {small:,} rows", f"{small_rate:,.0f} rows/s", f"{small_rss:.0f} MB", ""],
        [
            f"export {big:,} rows",
            f"{rate:,.0f} rows/s",
            f"{rss:.0f} MB",
            f">= {EXPORT_RATE:,}/s, < {EXPORT_RSS_MB} MB, flat: {verdict(ok)}",
        ],
    ]


def bench_reprocess(rows: int) -> list[list[str]]:
    with throwaway_database() as url:
        seed(url, rows)
        env = child_env(fresh_credentials()) | {"VREC_DATABASE_URL": url}
        settings = settings_from_env(env)
        with Database(url) as db:
            started = time.perf_counter()
            batch = reprocess(
                db, settings, "SELECT id AS image_id FROM images", ["aliyun_plate"], {}
            )
            seconds = time.perf_counter() - started
            with db.transaction() as s:
                jobs = s.execute(
                    text("SELECT COUNT(*) FROM jobs WHERE batch_id = :b"), {"b": batch}
                )
                n = int(jobs.scalar_one())
    assert n == rows, f"{n} jobs for {rows} images"
    rate = n / seconds
    return [
        [
            f"reprocess {rows:,} images",
            f"{rate:,.0f} jobs/s",
            f"{seconds:.1f} s",
            f">= {REPROCESS_RATE:,} jobs/s: {verdict(rate >= REPROCESS_RATE)}",
        ]
    ]


def bench_reuse(answered: int) -> list[list[str]]:
    credentials = fresh_credentials()
    with (
        throwaway_database() as url,
        image_folder(answered) as paths,
        simulator(credentials) as sim,
    ):
        folder = str(Path(paths[0]).parent)
        settings = settings_from_env(child_env(credentials) | {"VREC_DATABASE_URL": url})
        with Database(url) as db:
            first = submit(db, settings, [folder], [P], {})
            with db.transaction() as s:  # answered yesterday: seeded, no vendor call needed
                s.execute(
                    text(
                        "UPDATE jobs SET status = 'succeeded', attempts = 1, finished_at = now() "
                        "WHERE batch_id = :b"
                    ),
                    {"b": first},
                )
                s.execute(
                    text(
                        "INSERT INTO results (job_id, attempt, image_id, provider, outcome, raw, "
                        "warnings, created_at) SELECT id, 1, image_id, provider, 'succeeded', "
                        "'{}', '[]', now() - interval '1 day' FROM jobs WHERE batch_id = :b"
                    ),
                    {"b": first},
                )
        env = child_env(credentials)
        env.update(base_urls(settings, sim.base_url))
        env["VREC_DATABASE_URL"] = url
        subprocess.run(
            [sys.executable, "-m", "worker", "run", folder, "-p", P, "--json"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        calls = sim_stats(sim, P)["calls"]
    return [
        [
            f"run {answered:,} images already answered",
            f"{calls} vendor calls",
            "",
            f"0 calls: {verdict(calls == 0)}",
        ]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--answered", type=int, default=10_000)
    args = parser.parse_args()
    with stop_on_sigterm():
        rows = bench_export(args.rows) + bench_reprocess(args.rows) + bench_reuse(args.answered)
    print(table(rows, ["what", "rate", "size / time", "target"]))


if __name__ == "__main__":
    main()
