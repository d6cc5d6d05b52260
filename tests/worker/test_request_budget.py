"""Prepared request bytes are bounded per process (worker/request_budget.py): task threads
running the real pipeline against the simulator over loopback (real aiohttp, the real
runtime's loop and limiter), watched where a job enters the limiter."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from worker.config import Settings
from worker.errors import Outcome
from worker.jobrun import JobRun
from worker.pipeline import JobSpec, process_jobs
from worker.providers.registry import get_provider
from worker.providers.tencent_vehicle_license import TencentVehicleLicense
from worker.ratelimit import AtSlot, Limiter, Slot
from worker.request_budget import RequestBudget, request_claim
from worker.runtime import Runtime
from worker.simulator.environment import point_at
from worker.simulator.samples import licence_page
from worker.simulator.server import SimulatorThread

P = "tencent_vehicle_license"
THREADS, CHUNK = 6, 2


@dataclass
class Watched:
    """The runtime's limiter; at each job's entry (the in-flight section, which holds its
    limiter wait and its call) it notes what the budget holds and how many jobs are in."""

    inner: Limiter
    budget: RequestBudget
    inside: int = 0
    most_inside: int = 0
    seen: list[tuple[int, int, int]] = field(default_factory=list)  # (inside, holders, bytes)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def acquire(
        self, key: str, rate: float, *, max_wait: float, at_slot: AtSlot | None = None
    ) -> Slot:
        return await self.inner.acquire(key, rate, max_wait=max_wait, at_slot=at_slot)

    async def penalize(self, key: str, slot: Slot, *, retry_after: float | None = None) -> bool:
        return await self.inner.penalize(key, slot, retry_after=retry_after)

    def in_flight(self, key: str, cap: int | None) -> contextlib.AbstractAsyncContextManager[None]:
        return self._counted(self.inner.in_flight(key, cap))

    @contextlib.asynccontextmanager
    async def _counted(
        self, inner: contextlib.AbstractAsyncContextManager[None]
    ) -> AsyncIterator[None]:
        with self.lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            self.seen.append((self.inside, self.budget.holders, self.budget.in_use))
        try:
            async with inner:
                yield
        finally:
            with self.lock:
                self.inside -= 1

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def factor(self, key: str) -> float:
        return await self.inner.factor(key)


@contextlib.contextmanager
def _runtime(settings: Settings) -> Iterator[tuple[Runtime, Settings, SimulatorThread]]:
    with SimulatorThread(settings, providers=[P]) as sim:
        pointed = point_at(settings, sim.base_url, [P])
        block = pointed.provider(P).model_copy(update={"rate": 8.0})  # jobs queue for slots
        pointed = pointed.model_copy(update={P: block})
        rt = Runtime(pointed)
        try:
            yield rt, pointed, sim
        finally:
            rt.close()


def _threads(tmp_path: Path, settings: Settings, budget: RequestBudget) -> tuple[Watched, int]:
    """THREADS task threads, each a chunk of CHUNK licence pages; every job must succeed.
    The watcher and the simulator's call count."""
    with _runtime(settings) as (rt, pointed, sim):
        assert sim.simulator is not None
        provider = get_provider(P, pointed)
        watched = Watched(rt.limiter, budget)
        chunks = []
        for t in range(THREADS):
            specs = []
            for j in range(CHUNK):
                path = tmp_path / f"page{t}-{j}.jpg"
                path.write_bytes(licence_page("FRONT", 100 + t * CHUNK + j, (900, 600)))
                specs.append(JobSpec(provider, str(path), {"card_side": "FRONT"}, None))
            chunks.append(specs)

        def chunk(specs: list[JobSpec]) -> list[JobRun]:
            return process_jobs(
                specs,
                run=rt.run,
                session=rt.http,
                limiter=watched,
                settings=pointed,
                budget=budget,
            )

        with ThreadPoolExecutor(THREADS) as pool:
            runs = [run for done in pool.map(chunk, chunks) for run in done]
        assert [r.outcome for r in runs] == [Outcome.SUCCEEDED] * (THREADS * CHUNK)
        return watched, sim.simulator.stats[P].calls


CLAIM = request_claim(TencentVehicleLicense.limits.max_b64_bytes)


def test_one_claim_of_room_lets_one_prepared_request_exist(
    settings: Settings, tmp_path: Path
) -> None:
    budget = RequestBudget(CLAIM)  # room for one request as claimed before preparing
    watched, calls = _threads(tmp_path, settings, budget)
    assert calls == THREADS * CHUNK
    # Each job came to the limiter with its bytes counted, and alone: the others waited
    # for room before preparing, not holding a request at the limiter.
    assert watched.most_inside == 1
    assert all(holders >= inside and held > 0 for inside, holders, held in watched.seen)
    assert budget.peak_in_use <= budget.limit
    assert budget.peak_holders == 1
    assert (budget.in_use, budget.holders) == (0, 0)  # every call gave its room back


def test_a_budget_of_several_bounds_the_bytes_not_the_jobs(
    settings: Settings, tmp_path: Path
) -> None:
    budget = RequestBudget(3 * CLAIM)
    watched, calls = _threads(tmp_path, settings, budget)
    assert calls == THREADS * CHUNK
    assert watched.most_inside > 1  # several wait at the limiter at once: the bound is bytes
    assert all(holders >= inside for inside, holders, _ in watched.seen)
    assert budget.limit >= budget.peak_in_use > CLAIM
    assert (budget.in_use, budget.holders) == (0, 0)


# -- the budget itself --------------------------------------------------------------------


def test_a_claim_waits_for_room_in_arrival_order() -> None:
    budget = RequestBudget(100)
    first = budget.claim(60)
    order: list[int] = []

    def claim(size: int, tag: int) -> None:
        hold = budget.claim(size)
        order.append(tag)
        hold.release()

    big = threading.Thread(target=claim, args=(80, 1))
    big.start()
    while not budget.waiting:  # the big claim is waiting
        threading.Event().wait(0.001)
    assert budget.try_claim(10) is None  # fits, but someone waits before it
    small = threading.Thread(target=claim, args=(10, 2))
    small.start()
    first.resize(5)  # room for the big one now
    big.join(5)
    small.join(5)
    assert order == [1, 2]
    first.release()
    first.release()  # a second release gives nothing back twice
    assert (budget.in_use, budget.holders) == (0, 0)


def test_a_claim_larger_than_the_budget_runs_alone() -> None:
    budget = RequestBudget(10)
    hold = budget.claim(50)  # nothing else held: granted
    assert budget.try_claim(1) is None
    hold.release()
    assert budget.try_claim(1) is not None


def test_the_budget_needs_a_byte() -> None:
    with pytest.raises(ValueError, match="at least one byte"):
        RequestBudget(0)
