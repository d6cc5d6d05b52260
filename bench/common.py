"""Shared setup for the flow benchmarks (bench/ratelimit.py, bench/throughput.py,
bench/faults.py).

Everything runs on loopback against real services: a throwaway PostgreSQL database
(dropped afterwards), Redis DBs 10-12 (flushed before and after; nothing else is
touched), the vendor simulator as its own process (``python -m worker simulator``), and
real worker *processes* (``vrec worker`` or ``celery -A ...``). All of them are started in
their own sessions, so a Ctrl-C reaches only the benchmark, which then stops them in its
``finally``.

Figures come from the simulator the way any client reads them, ``GET /__sim/stats``:
calls, admitted, throttled, the busiest trailing second, the wall-clock first and last
arrival, and (``?arrivals=1``) every arrival's time. Nothing of the simulator runs in the
benchmark's process, so the benchmark's own work cannot delay its arrivals.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import io
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from models import migrate
from worker.settings import settings_from_env
from worker.simulator.environment import base_urls, made_up_credentials
from worker.simulator.samples import licence_page
from worker.simulator.server import busiest_window

REPO = Path(__file__).resolve().parent.parent
P = "tencent_vehicle_license"
POSTGRES_ADMIN_URL = os.environ.get(
    "VREC_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE = os.environ.get("VREC_BENCH_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
# The benchmarks' own Redis DBs: vrec broker, vrec limiter, the Celery baseline's broker.
BROKER_DB, LIMITER_DB, BASELINE_DB = 10, 11, 12
LOCK = Path(tempfile.gettempdir(), "vrec-bench-flow.lock")


def redis_url(db: int) -> str:
    return f"{REDIS_BASE}/{db}"


def flush_redis(*dbs: int) -> None:
    for db in dbs:
        assert 10 <= db <= 12, "benchmarks flush only Redis DBs 10-12"
        client = redis.Redis.from_url(redis_url(db))
        try:
            client.flushdb()
        finally:
            client.close()


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """One benchmark at a time (they share Redis DBs 10-12 and would take each other's
    messages), and SIGTERM behaves like Ctrl-C, so ``finally`` blocks stop workers and
    drop databases."""

    def _raise(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    with open(LOCK, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another flow benchmark is running (lock {LOCK})") from None
        previous = signal.signal(signal.SIGTERM, _raise)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """A new PostgreSQL database migrated to head; dropped (FORCE) on the way out."""
    name = f"vrec_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False)
        try:
            migrate.upgrade(url)
            yield url
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextlib.contextmanager
def image_folder(
    n: int, size: tuple[int, int] = (200, 120), *, first: int = 0
) -> Iterator[list[str]]:
    """``n`` distinct small licence pages, JPEG (distinct content: vrec deduplicates images
    by sha256 and reuses answers, so batches sharing a database take different ``first``
    seeds; licence pages: what the Tencent simulator reads, with its blur warning for
    pages under 500x800)."""
    with tempfile.TemporaryDirectory(prefix="vrec-bench-") as tmp:
        paths = []
        for i in range(first, first + n):
            path = Path(tmp, f"car{i:06d}.jpg")
            path.write_bytes(licence_page("FRONT", i, size))
            paths.append(str(path))
        yield paths


PHOTO_SIZE = (4000, 3000)  # 12 MP, a phone camera's
PHOTO_BASES = 16  # distinct pictures in the cache; each job's file is one plus a comment
PHOTO_CACHE = Path(
    os.environ.get("VREC_BENCH_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "vrec-bench")
)


def _photo(seed: int) -> bytes:
    """A 12 MP JPEG of 2-4 MB: gradients, blocks of colour and Gaussian noise (what keeps
    a real photo's JPEG that large), different per ``seed``. It shows no vehicle, so
    the simulator's Tencent answers NoVehicleLicenseError (a billed no_result)."""
    from PIL import Image, ImageDraw

    w, h = PHOTO_SIZE
    ramp = Image.linear_gradient("L").resize(PHOTO_SIZE)
    img = Image.merge(
        "RGB",
        (ramp, ramp.rotate(90).resize(PHOTO_SIZE), Image.new("L", PHOTO_SIZE, 90 + seed % 60)),
    )
    draw = ImageDraw.Draw(img)
    for i in range(12):
        x, y = (seed * 97 + i * 331) % w, (seed * 61 + i * 197) % h
        colour = ((seed * 13 + i * 40) % 255, (i * 70) % 255, (seed * 7) % 255)
        draw.rectangle((x, y, x + 400, y + 250), fill=colour)
    sigma = 30 + (seed * 7) % 25  # 2-4 MB between them
    noise = Image.merge("RGB", [Image.effect_noise(PHOTO_SIZE, sigma) for _ in range(3)])
    out = io.BytesIO()
    Image.blend(img, noise, 0.25).save(out, "JPEG", quality=88)
    return out.getvalue()


def cached_photos() -> list[bytes]:
    """The PHOTO_BASES pictures, made once (~2 s each) into PHOTO_CACHE and read back."""
    folder = PHOTO_CACHE / f"photos-{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}-v1"
    folder.mkdir(parents=True, exist_ok=True)
    photos = []
    for i in range(PHOTO_BASES):
        path = folder / f"photo{i:02d}.jpg"
        if not path.exists():
            tmp = path.with_suffix(".part")
            tmp.write_bytes(_photo(i))
            tmp.replace(path)
        photos.append(path.read_bytes())
    return photos


@contextlib.contextmanager
def photo_folder(n: int) -> Iterator[list[str]]:
    """``n`` distinct realistic photos (12 MP JPEG, 2-4 MB): a cached picture with a JPEG
    comment naming the file right after its SOI marker, so every file is its own content
    (vrec deduplicates by sha256) at the cost of a copy."""
    photos = cached_photos()
    with tempfile.TemporaryDirectory(prefix="vrec-bench-photos-") as tmp:
        paths = []
        for i in range(n):
            data = photos[i % len(photos)]
            comment = f"vrec bench photo {i}".encode()
            segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
            path = Path(tmp, f"photo{i:06d}.jpg")
            path.write_bytes(data[:2] + segment + data[2:])
            paths.append(str(path))
        yield paths


class RssSampler:
    """Every worker process's resident set size, sampled every ``every`` seconds in a
    thread while the block runs: the peak over the run, and the median over the run of
    the largest worker's (what a worker holds once start-up's burst is over)."""

    def __init__(self, workers: Workers, every: float = 0.25) -> None:
        self.workers, self.every = workers, every
        self.peak = 0
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError):  # a worker replaced meanwhile
                largest = max(self.workers.rss_bytes())
                self.samples.append(largest)
                self.peak = max(self.peak, largest)
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def median(self) -> int:
        return int(statistics.median(self.samples)) if self.samples else 0


# -- the simulator ------------------------------------------------------------------------


class SimulatorProcess:
    """``python -m worker simulator`` on a free loopback port, in its own session."""

    def __init__(self, env: dict[str, str], *, start_timeout: float = 60.0) -> None:
        with socket.socket() as probe:  # a free port; the child binds it a moment later
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.logdir = Path(tempfile.mkdtemp(prefix="vrec-bench-sim-"))
        self.log = self.logdir / "simulator.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "worker", "simulator", "--port", str(port)],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for(self._ready, timeout=start_timeout, poll=0.1, what="simulator start")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"simulator exited early:\n{self.log.read_text(errors='replace')}")
        try:
            self.stats()
        except OSError:
            return False
        return True

    def stats(self, *, arrivals: bool = False) -> dict[str, dict[str, Any]]:
        url = f"{self.base_url}/__sim/stats" + ("?arrivals=1" if arrivals else "")
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - our loopback
            stats: dict[str, dict[str, Any]] = json.load(answer)
        return stats

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # aiohttp's run_app: graceful on SIGINT
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def child_env(credentials: dict[str, str]) -> dict[str, str]:
    """A child process's environment: this one minus any VREC_* (the run sets its own), plus
    ``credentials`` and the repository on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VREC_")}
    env.update(credentials)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


@contextlib.contextmanager
def simulator(
    credentials: dict[str, str],
    *,
    latency_ms: tuple[float, float] = (0.0, 0.0),
    latency: str = "uniform",
    limit: int | None = None,
    throttle: bool = True,
) -> Iterator[SimulatorProcess]:
    """The simulator (every vendor; Tencent limited to ``limit``) accepting ``credentials``;
    ``latency`` uniform in ``latency_ms`` or lognormal with its (median, p99)."""
    env = child_env(credentials)
    env["VREC_SIMULATOR__LATENCY"] = latency
    env["VREC_SIMULATOR__LATENCY_MS"] = json.dumps(list(latency_ms))
    env["VREC_SIMULATOR__THROTTLE"] = json.dumps(throttle)
    if limit is not None:
        env["VREC_SIMULATOR__LIMITS"] = json.dumps({P: limit})
    sim = SimulatorProcess(env)
    ok = False
    try:
        yield sim
        ok = True
    finally:
        sim.stop()
        if ok:  # keep the log only when something went wrong
            shutil.rmtree(sim.logdir, ignore_errors=True)
        else:
            print(f"simulator log kept in {sim.logdir}", file=sys.stderr)


def sim_stats(
    sim: SimulatorProcess, provider: str = P, *, arrivals: bool = False
) -> dict[str, Any]:
    """The simulator's own figures for ``provider``, read as any client would."""
    return sim.stats(arrivals=arrivals)[provider]


# -- worker processes ---------------------------------------------------------------------


def worker_env(
    credentials: dict[str, str], sim: SimulatorProcess, database_url: str, **extra: str
) -> dict[str, str]:
    """The environment of every worker process: the run's settings on :func:`child_env`."""
    env = child_env(credentials)
    env.update(base_urls(settings_from_env(env), sim.base_url))
    env["VREC_DATABASE_URL"] = database_url
    env["VREC_BROKER_URL"] = redis_url(BROKER_DB)
    env["VREC_REDIS_URL"] = redis_url(LIMITER_DB)
    env.update(extra)
    return env


def fresh_credentials() -> dict[str, str]:
    """New made-up credentials: a fresh limiter key per scenario, whatever Redis holds."""
    return made_up_credentials()


def vrec_worker_cmd(concurrency: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "worker",
        "worker",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "WARNING",
        *extra,
    ]


class Workers:
    """N worker processes from one command line; each gets its own node name and log file."""

    def __init__(
        self, cmd: Sequence[str], n: int, env: dict[str, str], broker_url: str, tag: str
    ) -> None:
        self.cmd, self.n, self.env, self.broker_url, self.tag = list(cmd), n, env, broker_url, tag
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logdir = Path(tempfile.mkdtemp(prefix=f"vrec-bench-{tag}-"))

    def __enter__(self) -> Workers:
        try:
            for i in range(self.n):
                self.procs.append(self._start(i))
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        self.stop()
        if exc_type is None:  # keep the logs only when something went wrong
            shutil.rmtree(self.logdir, ignore_errors=True)

    def _wait_ready(self, timeout: float = 90.0) -> None:
        """Until all N answer a remote-control ping: consuming, not merely started."""
        app = Celery("bench-ping", broker=self.broker_url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.check_alive()
                if len(app.control.ping(timeout=0.5)) >= self.n:
                    return
            raise RuntimeError(f"{self.tag}: workers not ready after {timeout:.0f}s\n{self.logs()}")
        finally:
            app.close()

    def _start(self, i: int) -> subprocess.Popen[bytes]:
        node = f"{self.tag}{i}-{secrets.token_hex(3)}@%h"
        log = (self.logdir / f"{i}-{node.split('@')[0]}.log").open("wb")
        try:
            return subprocess.Popen(
                [*self.cmd, "-n", node],
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C goes to us; we stop them in order
            )
        finally:
            log.close()

    def kill_and_replace(self, i: int) -> None:
        """SIGKILL worker ``i`` (no warm shutdown: its leases, prefetched messages and calls
        in flight are left behind) and start a new one in its place, not waited for."""
        victim = self.procs[i]
        victim.kill()
        victim.wait(10)
        self.procs[i] = self._start(i)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the worker processes have used so far (Linux): a
        figure that, unlike a rate, does not move much when other work shares the cores."""
        total = 0
        for proc in self.procs:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        return total / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> list[int]:
        """Each worker process's resident set size now (Linux)."""
        out = []
        for proc in self.procs:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out.append(int(line.split()[1]) * 1024)
        return out

    def check_alive(self) -> None:
        dead = [p.args for p in self.procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"{self.tag}: a worker exited early\n{self.logs()}")

    def logs(self, tail: int = 3000) -> str:
        out = []
        for log in sorted(self.logdir.glob("*.log")):
            out.append(f"--- {log}\n{log.read_text(errors='replace')[-tail:]}")
        return "\n".join(out)

    def stop(self, timeout: float = 20.0) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: it and its children
                proc.wait()
        self.procs.clear()


# -- figures ------------------------------------------------------------------------------


@dataclass
class RateFigures:
    calls: int  # arrivals at the simulator
    admitted: int  # within the simulator's limit when they arrived
    throttled: int  # refused on arrival (answered RequestLimitExceeded)
    max_per_second: int  # the simulator's busiest trailing second of arrivals
    span: float  # seconds from the first to the last arrival
    arrival_rate: float  # calls/s over the span
    accepted_rate: float  # admitted calls/s over the span
    middle_rate: float  # admitted calls/s over the middle 80% of the span (steady state)
    first_seconds_max: int  # busiest trailing second within the first 10 s (start-up)


def rate_figures(stats: dict[str, Any]) -> RateFigures:
    """Figures from the simulator's stats (``?arrivals=1``), all of them its own counts.

    The rate over a span of ``n`` arrivals is ``(n - 1) / span``, and the admitted rate its
    admitted share (exact when nothing is throttled; the throttled calls are spread over
    the run otherwise).
    """
    calls, admitted = int(stats["calls"]), int(stats["admitted"])
    times = sorted(stats["arrivals"])
    span = stats["last_arrival"] - stats["first_arrival"] if calls > 1 else 0.0
    arrival = (calls - 1) / span if span > 0 else 0.0
    share = admitted / calls if calls else 0.0
    middle = 0.0
    if span > 0:  # arrivals within the middle 80% of the span: no start-up or tail
        lo, hi = times[0] + 0.1 * span, times[0] + 0.9 * span
        inside = bisect.bisect_right(times, hi) - bisect.bisect_left(times, lo)
        middle = inside / (hi - lo)
    early = times[: bisect.bisect_right(times, times[0] + 10.0)] if times else []
    return RateFigures(
        calls=calls,
        admitted=admitted,
        throttled=int(stats["throttled"]),
        max_per_second=int(stats["max_per_second"]),
        span=span,
        arrival_rate=arrival,
        accepted_rate=arrival * share,
        middle_rate=middle * share,
        first_seconds_max=busiest_window(early),
    )


def pending_messages(client: redis.Redis, queue: str) -> int:
    """Messages of ``queue`` not yet acked: its lists (kombu keeps one per priority step)
    plus the transport's ``unacked`` hash (delivered to a worker, task not finished). With
    late acks, 0 means every task has run (or failed)."""
    waiting = sum(
        int(client.llen(key))
        for key in client.scan_iter(match=f"{queue}*")
        if client.type(key) == b"list"
    )
    return waiting + int(client.hlen("unacked"))


def wait_for(
    condition: Callable[[], bool], *, timeout: float, poll: float = 0.1, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done after {timeout:.0f}s: {what}")
        time.sleep(poll)


def parse_latency(text: str) -> tuple[float, float]:
    """A ``--latency`` argument: ``LOW,HIGH`` milliseconds, or one number for both."""
    low, _, high = text.partition(",")
    return float(low), float(high or low)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A plain fixed-width table (no colours: the output is meant to be pasted)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


# -- a vrec batch, end to end -------------------------------------------------------------


@dataclass
class BatchRun:
    counts: dict[str, int]
    submit_seconds: float  # registering the images and creating the jobs
    run_seconds: float  # first dispatch until every job is terminal


def run_vrec_batch(
    env: dict[str, str],
    paths: Sequence[str],
    *,
    timeout: float,
    workers: Workers | None = None,
    poll: float = 0.1,
    on_progress: Callable[[dict[str, int]], None] | None = None,
) -> BatchRun:
    """Submit ``paths`` for Tencent and dispatch/follow the batch as ``vrec run`` does;
    ``on_progress`` gets the jobs by status at every poll (a benchmark's fault injection)."""
    from models.db import Database
    from worker.app import make_app
    from worker.service.follow import follow
    from worker.service.status import Progress
    from worker.service.submit import submit

    settings = settings_from_env(env)
    db = Database(settings.database_url)
    app = make_app(settings)
    try:
        t0 = time.monotonic()
        batch_id = submit(db, settings, paths, [P], {}, label="bench")
        t1 = time.monotonic()

        def progress(progress: Progress) -> None:
            if workers is not None:
                workers.check_alive()  # a dead worker would otherwise look like a slow one
            if on_progress is not None:
                on_progress(progress.counts)

        result = follow(
            db, app, settings, batch_id, on_progress=progress, poll=poll, timeout=timeout
        )
        return BatchRun(result.counts, t1 - t0, time.monotonic() - t1)
    finally:
        app.close()
        db.dispose()
