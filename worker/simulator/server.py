"""The vendor simulator: one aiohttp application serving every registered vendor's ``Sim``.

Each call goes through, in order (see :mod:`worker.simulator.base`): count the arrival
and decide the vendor's per-second limit *at arrival*, as a vendor counting requests per
trailing second does (admitted unless ``limit`` calls were already admitted in the
trailing second), sleep the configured latency (:func:`draw_latency`: uniform, or
log-normal with a long tail), then answer: ``Sim.throttled()`` if the call was refused at
arrival, else maybe an injected fault (:mod:`worker.simulator.faults`), else
``Sim.handle`` (:mod:`worker.simulator.base`), which spends the caller's daily quota
(:class:`Quotas`). Deciding at arrival matters: a client controls only when its calls
arrive; a limit checked after a random latency would reorder and bunch evenly spaced
calls, and throttle a client that never exceeded the limit.

``GET /__sim/stats`` answers, per provider: ``calls`` (arrivals), ``admitted`` (calls
within the limit), ``throttled`` (refused at arrival), ``faults``, ``max_per_second`` (the
most arrivals in any sliding one-second window), and ``first_arrival`` / ``last_arrival``
(wall clock, :func:`time.time`; null before the first call), and ``over_quota`` (calls
refused because their credential's daily quota was spent), so a client in another
process can compute an achieved rate without reaching into the server.
``GET /__sim/stats?arrivals=1`` adds ``arrivals``: every arrival's wall-clock time (the
latest :data:`ARRIVALS_KEPT`). ``POST /__sim/reset`` zeroes them and the quotas.
``GET /`` (and any GET nothing else claims) answers the help :mod:`.environment` writes:
the environment that points vrec at this simulator.

Running it: :func:`serve` (blocking, ``vrec simulator``), :func:`run_simulator` (async
context manager, tests), :class:`SimulatorThread` (its own loop in a thread, for sync
code: the demo, Celery tests). :func:`point_at` aims every provider's ``base_url`` at a
running simulator, keeping each real path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import math
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from worker.config import Settings, SimulatorSettings
from worker.providers.registry import PROVIDERS
from worker.simulator import echo, environment, faults
from worker.simulator.base import Context, VendorSim
from worker.simulator.environment import point_at

__all__ = ["Quotas", "Simulator", "SimulatorThread", "busiest_window", "point_at", "serve"]

WINDOW = 1.0  # seconds: the per-second limit and max_per_second look this far back
MAX_BODY = 64 * 1024 * 1024  # above every vendor's limit, so the Sim can answer its own code
ARRIVALS_KEPT = 1_000_000  # arrival times kept per vendor for ?arrivals=1 (8 MB at most)
BEIJING = timezone(timedelta(hours=8))  # where the vendors' days begin and end
Z99 = 2.3263478740408408  # the standard normal's 99th percentile


def draw_latency(knobs: SimulatorSettings, rng: random.Random) -> float:
    """One call's latency in seconds: ``uniform`` in ``latency_ms`` [low, high], or
    ``lognormal`` with median ``latency_ms[0]`` and 99th percentile ``latency_ms[1]``
    (sigma = ln(p99 / median) / 2.326: p99.9 is then median x (p99/median)^1.33, the long
    tail of a real vendor); either capped at ``latency_max_ms``."""
    first, second = knobs.latency_ms
    if second <= 0:
        return 0.0
    if knobs.latency == "lognormal":
        sigma = math.log(max(second, first) / first) / Z99
        ms = first * math.exp(sigma * rng.gauss(0.0, 1.0))
    else:
        ms = rng.uniform(first, second)
    return min(ms, knobs.latency_max_ms) / 1000


class Quotas:
    """Calls per credential per vendor per day (Beijing time), against the ``quotas`` knob.
    Credentials are held as digests only."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._used: dict[tuple[str, str], int] = {}
        self._day: date | None = None

    def spend(self, provider: str, credential: str, quota: int | None) -> bool:
        """Count one call; False (and not counted) once ``quota`` calls were made today."""
        if quota is None:
            return True
        today = datetime.fromtimestamp(self._clock(), BEIJING).date()
        if today != self._day:
            self._used, self._day = {}, today
        key = (provider, hashlib.sha256(credential.encode()).hexdigest())
        used = self._used.get(key, 0)
        if used >= quota:
            return False
        self._used[key] = used + 1
        return True


def busiest_window(times: Iterable[float], window: float = WINDOW) -> int:
    """The most of ``times`` within any trailing window ``(t - window, t]``: how a vendor
    counts calls, and the rule by which this simulator admits them (for figures and checks
    made after the fact; the simulator itself counts as calls arrive)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass
class VendorStats:
    calls: int = 0
    admitted: int = 0
    throttled: int = 0
    faults: int = 0
    over_quota: int = 0
    max_per_second: int = 0
    first_arrival: float | None = None  # time.time() of the first call
    last_arrival: float | None = None  # time.time() of the latest call
    _arrivals: deque[float] = field(default_factory=deque, repr=False)
    _admitted: deque[float] = field(default_factory=deque, repr=False)
    _history: deque[float] = field(default_factory=lambda: deque(maxlen=ARRIVALS_KEPT), repr=False)

    def arrive(self, now: float, wall: float, limit: int | None) -> bool:
        """Count one arrival (``now`` monotonic, ``wall`` wall clock) and decide the limit:
        False when ``limit`` calls were already admitted in the trailing second."""
        self.calls += 1
        if self.first_arrival is None:
            self.first_arrival = wall
        self.last_arrival = wall
        self._history.append(wall)
        _trim(self._arrivals, now)
        self._arrivals.append(now)
        self.max_per_second = max(self.max_per_second, len(self._arrivals))
        if limit is not None:
            _trim(self._admitted, now)
            if len(self._admitted) >= limit:
                self.throttled += 1
                return False
            self._admitted.append(now)
        self.admitted += 1
        return True

    def public(self, *, arrivals: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        if arrivals:
            out["arrivals"] = list(self._history)
        return out


def _trim(times: deque[float], now: float) -> None:
    while times and times[0] <= now - WINDOW:
        times.popleft()


def load_sim(name: str, settings: Settings) -> VendorSim:
    """``worker.simulator.<name>.Sim`` bound to the provider's settings block."""
    module = importlib.import_module(f"worker.simulator.{name}")
    sim = module.Sim(settings.provider(name))
    if not isinstance(sim, VendorSim):
        raise TypeError(f"worker.simulator.{name}.Sim does not satisfy VendorSim")
    return sim


class Simulator:
    """The application and its state: sims, stats, the fault dice."""

    def __init__(
        self, settings: Settings, providers: Iterable[str] | None = None, *, seed: int | None = None
    ) -> None:
        self.settings = settings
        self.sims: dict[str, VendorSim] = {
            name: load_sim(name, settings) for name in (providers or PROVIDERS)
        }
        self.stats: dict[str, VendorStats] = {name: VendorStats() for name in self.sims}
        self.rng = random.Random(settings.simulator.seed if seed is None else seed)
        self.quotas = Quotas()
        self.closing = asyncio.Event()
        self.help = ""  # set once the address is known (run_simulator, serve)
        self.app = self._build()

    def _build(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_get("/__sim/stats", self._stats)
        app.router.add_post("/__sim/reset", self._reset)
        seen: dict[tuple[str, str], str] = {}
        for name, sim in self.sims.items():
            for method, path in sim.routes:
                if (method, path) in seen:
                    raise ValueError(f"{name} and {seen[method, path]} both claim {method} {path}")
                seen[method, path] = name
                app.router.add_route(method, path, self._wrap(name, sim))
        if ("GET", "/") not in seen:
            app.router.add_get("/", self._help)
        app[faults.CLOSING] = self.closing
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, _app: web.Application) -> None:
        self.closing.set()

    def limit(self, name: str) -> int | None:
        if not self.settings.simulator.throttle:
            return None
        return self.settings.simulator.limits.get(name, self.sims[name].default_limit)

    def snapshot(self, *, arrivals: bool = False) -> dict[str, dict[str, Any]]:
        return {name: stats.public(arrivals=arrivals) for name, stats in self.stats.items()}

    def reset(self) -> None:
        self.stats = {name: VendorStats() for name in self.sims}
        self.quotas = Quotas()

    async def _help(self, _request: web.Request) -> web.Response:
        return web.Response(text=self.help or "the vendor simulator\n")

    def _context(self, name: str) -> Context:
        knobs = self.settings.simulator
        quota = knobs.quotas.get(name)

        def spend(credential: str) -> bool:
            if self.quotas.spend(name, credential, quota):
                return True
            self.stats[name].over_quota += 1
            return False

        return Context(knobs, spend)

    async def _stats(self, request: web.Request) -> web.Response:
        arrivals = request.query.get("arrivals", "") not in ("", "0", "false")
        return web.json_response(self.snapshot(arrivals=arrivals))

    async def _reset(self, _request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})

    def _wrap(
        self, name: str, sim: VendorSim
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            admitted = self.stats[name].arrive(time.monotonic(), time.time(), self.limit(name))
            body = await request.read()
            knobs = self.settings.simulator
            delay = draw_latency(knobs, self.rng)
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                if not admitted:
                    return sim.throttled()
                if knobs.faults and self.rng.random() < knobs.fault_rate:
                    self.stats[name].faults += 1  # after a reset: the new counters
                    fault = self.rng.choice(knobs.faults)
                    return await faults.answer(fault, request, sim, rng=self.rng)
                answer = await sim.handle(request, body, self._context(name))
                if knobs.echo_credentials and isinstance(answer, web.Response):
                    return echo.echoed(answer, echo.presented(request, body))
                return answer
            except faults.ConnectionAborted:
                # The transport is gone; aiohttp needs a response object to finish the
                # handler and drops it on the closed connection.
                return web.Response(status=499)

        return handler


@asynccontextmanager
async def run_simulator(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    providers: Iterable[str] | None = None,
) -> AsyncIterator[tuple[str, Simulator]]:
    """Serve on ``host:port`` (0: a free port) for the block; yields (base_url, simulator)."""
    simulator = Simulator(settings, providers)
    runner = web.AppRunner(simulator.app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        url = f"http://{host}:{bound}"
        simulator.help = environment.help_text(settings, url)
        yield url, simulator
    finally:
        await runner.cleanup()


class SimulatorThread:
    """The simulator on its own event loop in a daemon thread, for code that isn't async."""

    def __init__(
        self,
        settings: Settings,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        providers: Iterable[str] | None = None,
    ) -> None:
        self._args = (settings, host, port, list(providers) if providers else None)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.base_url = ""
        self.simulator: Simulator | None = None

    def start(self) -> SimulatorThread:
        self._thread = threading.Thread(target=self._run, name="vrec-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("simulator did not start within 30 s")
        if self._error is not None:
            raise RuntimeError("simulator failed to start") from self._error
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        settings, host, port, providers = self._args
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            running = run_simulator(settings, host=host, port=port, providers=providers)
            async with running as (url, sim):
                self.base_url, self.simulator = url, sim
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:  # reported by start(); a thread can't raise to its caller
            self._error = exc
            self._ready.set()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8900) -> None:
    """Serve until interrupted (``vrec simulator``): every credential left unset is made up
    first, and the environment that points vrec at this simulator is printed (the made-up
    credentials included: they are throwaway) and answered on ``GET /`` (without them)."""
    settings, made_up = environment.with_credentials(settings)

    async def main() -> None:
        async with run_simulator(settings, host=host, port=port) as (url, simulator):
            simulator.help = environment.help_text(settings, url, made_up)
            print(environment.help_text(settings, url, made_up, reveal=True), flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
