"""Benchmark: scheduled re-scans of a large folder (only what is new is read and billed).

    .venv/bin/python bench/schedules.py [--files 100000] [--new 1000]

On a throwaway PostgreSQL database, loopback only, with the simulator as its own process
(every vendor call it gets is counted):

1. ``--files / 10`` distinct small JPEGs (64x48, distinct bytes) in a folder and a schedule
   on it (``vrec schedule add``); its first run registers them all (setup, timed).
2. ``rescan small``: ``vrec schedule run NAME --json`` in its own process over the
   unchanged folder: seconds (the process, start to exit), files read, vendor calls, peak
   RSS (``ru_maxrss`` of the process, reported by a small launcher process).
3. The folder grows to ``--files``; a run registers the new ones (setup, timed).
4. ``rescan``: the same over the unchanged ``--files``. Targets: 0 files read, 0 vendor
   calls, under 10 s; peak RSS flat against step 2 (within 10%: memory does not grow
   with the folder).
5. ``--new`` new files among them; ``vrec schedule run`` registers and processes them (the
   embedded worker, against the simulator). Targets: exactly ``--new`` files read, a batch
   of ``--new`` items, ``--new`` vendor calls.

"Files read" is measured twice: by the scan's own counter (``files_read`` of the run,
counted where a file is opened), and by the OS: before each run every file's access time
is set to 1 ns after the epoch (its mtime kept), and afterwards the files whose access
time moved are counted (ext4's ``relatime`` updates it on the first read after a change;
the script checks that the filesystem does, and says ``n/a`` where it does not).

The setup batches' jobs are cancelled (their vendor calls are not what is measured).
Run time with the defaults: about two minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    child_env,
    fresh_credentials,
    sim_stats,
    simulator,
    stop_on_sigterm,
    table,
    throwaway_database,
    verdict,
)
from models.db import Database
from worker.service.batches import cancel
from worker.service.schedules import run_now
from worker.settings import build_settings, settings_from_env
from worker.simulator.environment import base_urls
from worker.simulator.samples import vehicle_photo

P = "tianapi_plate"
NAME = "bench"
RUN = [sys.executable, "-m", "worker", "schedule", "run", NAME, "--json"]
RESCAN_SECONDS, RSS_FLAT = 10.0, 1.10
OLD_ATIME = 1  # ns after the epoch: any read moves it (relatime: atime <= mtime)
# The measured command runs under this small launcher, which reports the command's peak
# RSS: a child of this process would inherit its RSS high-water mark (Linux keeps it across
# fork and exec), and this process holds the setup.
LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "sys.stderr.write(f'maxrss_kb={peak}\\n')\n"
    "sys.exit(code)\n"
)


def write_files(folder: Path, start: int, stop: int) -> list[Path]:
    """Files ``start``..``stop`` in 100 subfolders: one small JPEG with distinct trailing
    bytes each (decoders ignore what follows the end marker; sha256 tells them apart)."""
    base = vehicle_photo(0, (64, 48))
    paths = []
    for i in range(start, stop):
        path = folder / f"{i % 100:02d}" / f"car{i:07d}.jpg"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(base + b"vrec-bench %07d" % i)
        paths.append(path)
    return paths


def age_atimes(paths: Iterable[Path]) -> None:
    for path in paths:
        os.utime(path, ns=(OLD_ATIME, path.stat().st_mtime_ns))


def read_since_aged(paths: Iterable[Path]) -> int:
    return sum(1 for path in paths if path.stat().st_atime_ns != OLD_ATIME)


def atime_works(folder: Path) -> bool:
    probe = folder / "atime-probe"
    probe.write_bytes(b"x")
    age_atimes([probe])
    probe.read_bytes()
    works = probe.stat().st_atime_ns != OLD_ATIME
    probe.unlink()
    return works


@dataclass
class Scan:
    seconds: float  # the `vrec schedule run` process, start to exit
    run: dict[str, Any]  # its JSON: the run's counts, batch, outcome
    rss_mb: float
    os_read: int | None  # files whose access time moved; None where atime is not kept
    calls: int  # vendor calls the simulator counted during the run


def scan(env: dict[str, str], paths: list[Path], sim: Any, os_reads: bool) -> Scan:
    """One ``vrec schedule run`` in its own process, measured."""
    if os_reads:
        age_atimes(paths)
    before = sim_stats(sim, P)["calls"]
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", LAUNCHER, *RUN],
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
            check=False,
        )
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"vrec schedule run exited {proc.returncode}: {proc.stderr!r}")
        out.seek(0)
        run = json.load(out)["run"]
    peak_kb = int(proc.stderr.decode().rsplit("maxrss_kb=", 1)[1])
    return Scan(
        seconds,
        run,
        peak_kb / 1024,
        read_since_aged(paths) if os_reads else None,
        sim_stats(sim, P)["calls"] - before,
    )


def setup_run(url: str) -> tuple[float, int]:
    """A run in this process that registers what is new (setup): seconds and items; its
    jobs are cancelled, so later runs' embedded worker has only theirs to do."""
    settings = build_settings(database_url=url)
    with Database(url) as db:
        started = time.perf_counter()
        ran = run_now(db, settings, NAME)
        seconds = time.perf_counter() - started
        assert ran.run.batch_id is not None, ran.run.reason
        cancel(db, ran.run.batch_id)
    return seconds, ran.run.items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=1_000)
    args = parser.parse_args()
    small = args.files // 10
    credentials = fresh_credentials()
    with (
        stop_on_sigterm(),
        throwaway_database() as url,
        tempfile.TemporaryDirectory(prefix="vrec-bench-drop-") as tmp,
        simulator(credentials, throttle=False) as sim,
    ):
        folder = Path(tmp, "drop")
        folder.mkdir()
        env = child_env(credentials)
        env.update(base_urls(settings_from_env(env), sim.base_url))
        env.update({"VREC_DATABASE_URL": url, f"VREC_{P.upper()}__RATE": "1000"})
        os_reads = atime_works(Path(tmp))
        paths = write_files(folder, 0, small)
        add = ["schedule", "add", NAME, "-s", str(folder), "-p", P, "--cron", "0 2 * * *"]
        subprocess.run(
            [sys.executable, "-m", "worker", *add], env=env, check=True, stderr=subprocess.DEVNULL
        )
        first_seconds, first_items = setup_run(url)
        rescan_small = scan(env, paths, sim, os_reads)

        paths += write_files(folder, small, args.files)
        grow_seconds, grow_items = setup_run(url)
        rescan = scan(env, paths, sim, os_reads)

        added = write_files(folder, args.files, args.files + args.new)
        fresh = scan(env, paths + added, sim, os_reads)

    rows = figures(
        args, first_seconds, first_items, grow_seconds, grow_items, rescan_small, rescan, fresh
    )
    print(table(rows, ["what", "seconds", "files read (counter / OS)", "calls", "other", "target"]))


def _read(s: Scan) -> str:
    return f"{s.run['files']['read']:,} / " + ("n/a" if s.os_read is None else f"{s.os_read:,}")


def figures(
    args: argparse.Namespace,
    first_seconds: float,
    first_items: int,
    grow_seconds: float,
    grow_items: int,
    rescan_small: Scan,
    rescan: Scan,
    fresh: Scan,
) -> list[list[str]]:
    n, new = args.files, args.new
    unread = rescan.run["files"]["read"] == 0 and rescan.os_read in (0, None)
    rescan_ok = unread and rescan.calls == 0 and rescan.seconds < RESCAN_SECONDS
    flat = rescan.rss_mb <= rescan_small.rss_mb * RSS_FLAT
    read_ok = fresh.run["files"]["read"] == new and fresh.os_read in (new, None)
    fresh_ok = read_ok and fresh.run["items"] == new and fresh.calls == new
    return [
        [f"first scan, {first_items:,} new (setup)", f"{first_seconds:.1f}", "", "", "", ""],
        [
            f"rescan {n // 10:,} unchanged",
            f"{rescan_small.seconds:.1f}",
            _read(rescan_small),
            str(rescan_small.calls),
            f"{rescan_small.rss_mb:.0f} MB peak",
            "",
        ],
        [f"{grow_items:,} more new (setup)", f"{grow_seconds:.1f}", "", "", "", ""],
        [
            f"rescan {n:,} unchanged",
            f"{rescan.seconds:.1f}",
            _read(rescan),
            str(rescan.calls),
            f"{rescan.rss_mb:.0f} MB peak, batch {rescan.run['batch_id']}",
            f"0 read, 0 calls, < {RESCAN_SECONDS:.0f} s: {verdict(rescan_ok)}; "
            f"RSS within {RSS_FLAT - 1:.0%} of {n // 10:,}: {verdict(flat)}",
        ],
        [
            f"{new:,} new among {n + new:,}",
            f"{fresh.seconds:.1f}",
            _read(fresh),
            str(fresh.calls),
            f"batch of {fresh.run['items']:,} items, {fresh.run['files']['skipped']:,} skipped",
            f"{new:,} read, {new:,} items, {new:,} calls: {verdict(fresh_ok)}",
        ],
    ]


if __name__ == "__main__":
    main()
