"""The vendor simulator: one aiohttp application serving every registered vendor's ``Sim``.

Each call goes through, in order (see :mod:`worker.simulator.base`): count the arrival
and decide the vendor's per-second limit *at arrival*, as a vendor counting requests per
trailing second does (admitted unless ``limit`` calls were already admitted in the
trailing second), sleep the configured latency, then answer: ``Sim.throttled()`` if the
call was refused at arrival, else maybe an injected fault (:mod:`worker.simulator.faults`),
else ``Sim.handle``. Deciding at arrival matters: a client controls only when its calls
arrive; a limit checked after a random latency would reorder and bunch evenly spaced
calls, and throttle a client that never exceeded the limit.

``GET /__sim/stats`` answers, per provider: ``calls`` (arrivals), ``admitted`` (calls
within the limit), ``throttled`` (refused at arrival), ``faults``, ``max_per_second`` (the
most arrivals in any sliding one-second window), and ``first_arrival`` / ``last_arrival``
(wall clock, :func:`time.time`; null before the first call), so a client in another
process can compute an achieved rate without reaching into the server.
``GET /__sim/stats?arrivals=1`` adds ``arrivals``: every arrival's wall-clock time (the
latest :data:`ARRIVALS_KEPT`). ``POST /__sim/reset`` zeroes them.

Running it: :func:`serve` (blocking, ``vrec simulator``), :func:`run_simulator` (async
context manager, tests), :class:`SimulatorThread` (its own loop in a thread, for sync
code: the demo, Celery tests). :func:`point_at` aims every provider's ``base_url`` at a
running simulator, keeping each real path.
"""

from __future__ import annotations

import asyncio
import importlib
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from worker.config import Settings
from worker.providers.registry import PROVIDERS
from worker.simulator import faults
from worker.simulator.base import VendorSim

WINDOW = 1.0  # seconds: the per-second limit and max_per_second look this far back
MAX_BODY = 64 * 1024 * 1024  # above every vendor's limit, so the Sim can answer its own code
ARRIVALS_KEPT = 1_000_000  # arrival times kept per vendor for ?arrivals=1 (8 MB at most)


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
        self, settings: Settings, providers: Iterable[str] | None = None, *, seed: int = 0
    ) -> None:
        self.settings = settings
        self.sims: dict[str, VendorSim] = {
            name: load_sim(name, settings) for name in (providers or PROVIDERS)
        }
        self.stats: dict[str, VendorStats] = {name: VendorStats() for name in self.sims}
        self.rng = random.Random(seed)
        self.closing = asyncio.Event()
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
            low, high = knobs.latency_ms
            if high > 0:
                await asyncio.sleep(self.rng.uniform(low, high) / 1000)
            try:
                if not admitted:
                    return sim.throttled()
                if knobs.faults and self.rng.random() < knobs.fault_rate:
                    self.stats[name].faults += 1  # after a reset: the new counters
                    fault = self.rng.choice(knobs.faults)
                    return await faults.answer(fault, request, sim, rng=self.rng)
                return await sim.handle(request, body)
            except faults.ConnectionAborted:
                # The transport is gone; aiohttp needs a response object to finish the
                # handler and drops it on the closed connection.
                return web.Response(status=499)

        return handler


def point_at(settings: Settings, base_url: str, providers: Iterable[str] | None = None) -> Settings:
    """A copy of ``settings`` whose providers' base_url use ``base_url``'s scheme and host."""
    target = urlsplit(base_url)
    update: dict[str, Any] = {}
    for name in providers or PROVIDERS:
        block = settings.provider(name)
        url = urlsplit(block.base_url)
        moved = urlunsplit((target.scheme, target.netloc, url.path or "/", url.query, ""))
        update[name] = block.model_copy(update={"base_url": moved})
    return settings.model_copy(update=update)


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
        yield f"http://{host}:{bound}", simulator
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
    """Serve until interrupted (``vrec simulator``)."""
    web.run_app(Simulator(settings).app, host=host, port=port, shutdown_timeout=1.0)
