"""An exception nobody foresaw, injected at each stage of the pipeline through its real
seams (the source path, the event-loop hop, a provider subclass, the limiter, the journal,
aiohttp itself): every job of the chunk still comes back with a JobRun and a reason, and
the others in the chunk are called as usual. Real simulator over loopback, real aiohttp,
the process's real runtime; only the faulty part is a stub."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.faults import BuildFails, InjectsHeader, ParseFails, Throttled
from tests.support.vendors import provider_block
from worker.config import Settings
from worker.errors import Outcome
from worker.jobrun import JobRun
from worker.pipeline import CallJournal, JobSpec, process_jobs
from worker.providers.tencent_vehicle_license import (
    TencentVehicleLicense,
    TencentVehicleLicenseSettings,
)
from worker.ratelimit import AtSlot, Limiter, Slot
from worker.runtime import Runtime
from worker.simulator.environment import point_at
from worker.simulator.samples import licence_page
from worker.simulator.server import SimulatorThread

P = "tencent_vehicle_license"


@pytest.fixture
def photos(tmp_path: Path) -> list[str]:
    paths = []
    for i in range(3):
        path = tmp_path / f"car{i}.jpg"
        path.write_bytes(licence_page("FRONT", 40 + i, (900, 600)))
        paths.append(str(path))
    return paths


# -- the faulty parts ----------------------------------------------------------------------


@dataclass
class FaultyLimiter:
    """The runtime's limiter, but the ``calls``-th use (0-based) of ``where`` raises."""

    inner: Limiter
    where: str
    exc: BaseException
    calls: int = 0
    fail_on: set[int] = field(default_factory=lambda: {1})

    def _maybe_fail(self, where: str) -> None:
        if where == self.where:
            self.calls += 1
            if self.calls - 1 in self.fail_on:
                raise self.exc

    async def acquire(
        self, key: str, rate: float, *, max_wait: float, at_slot: AtSlot | None = None
    ) -> Slot:
        self._maybe_fail("acquire")
        return await self.inner.acquire(key, rate, max_wait=max_wait, at_slot=at_slot)

    async def penalize(self, key: str, slot: Slot, *, retry_after: float | None = None) -> bool:
        self._maybe_fail("penalize")
        return await self.inner.penalize(key, slot, retry_after=retry_after)

    def in_flight(self, key: str, cap: int | None) -> contextlib.AbstractAsyncContextManager[None]:
        self._maybe_fail("in_flight")
        return self.inner.in_flight(key, cap)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def factor(self, key: str) -> float:
        return await self.inner.factor(key)


class FaultyJournal:
    """A journal whose second write fails with something other than CallNotRecorded."""

    def __init__(self) -> None:
        self.asked = 0
        self.written: list[int] = []

    async def calling(self, index: int, started_at: datetime) -> None:
        self.asked += 1
        if self.asked == 2:
            raise KeyError(index)
        self.written.append(index)

    async def withdraw(self, index: int) -> None:
        self.written.remove(index)


# -- the harness ---------------------------------------------------------------------------


@dataclass
class Chunk:
    runs: list[JobRun]
    calls: int  # what the simulator received


@contextlib.contextmanager
def _runtime(settings: Settings) -> Iterator[tuple[Runtime, Settings, Callable[[], int]]]:
    with SimulatorThread(settings, providers=[P]) as sim:
        assert sim.simulator is not None
        stats = sim.simulator.stats[P]
        pointed = point_at(settings, sim.base_url, [P])
        rt = Runtime(pointed)
        try:
            yield rt, pointed, lambda: stats.calls
        finally:
            rt.close()


def _chunk(
    settings: Settings,
    sources: list[str],
    kinds: list[type[TencentVehicleLicense]],
    *,
    limiter: Callable[[Limiter], Limiter] | None = None,
    journal: CallJournal | None = None,
    run: Callable[[Runtime], Callable[[Coroutine[Any, Any, Any]], Any]] | None = None,
) -> Chunk:
    """One chunk through process_jobs: job i reads ``sources[i]`` with a ``kinds[i]``."""
    with _runtime(settings) as (rt, pointed, calls):
        block = provider_block(pointed, TencentVehicleLicenseSettings)
        specs = [
            JobSpec(kind(block), source, {"card_side": "FRONT"}, None)
            for kind, source in zip(kinds, sources, strict=True)
        ]
        runs = process_jobs(
            specs,
            run=run(rt) if run else rt.run,
            session=rt.http,
            limiter=limiter(rt.limiter) if limiter else rt.limiter,
            settings=pointed,
            journal=journal,
        )
        return Chunk(runs, calls())


def _reasons(chunk: Chunk) -> list[str]:
    """Each job's outcome and, for an error, its message (every job must have one)."""
    shown = []
    for run in chunk.runs:
        assert run.outcome is not None or run.give_back is not None, run
        shown.append(str(run.error) if run.error else str(run.outcome))
    return shown


T = TencentVehicleLicense


class NamedStr(str):
    """A source path whose reading raises: a stub's attribute lookup failing inside it."""

    def startswith(self, *args: Any) -> bool:
        raise KeyError("startswith")


# -- the tests -----------------------------------------------------------------------------


def test_reading_the_source(settings: Settings, photos: list[str]) -> None:
    sources = [photos[0], NamedStr(photos[1]), photos[2] + "\x00.jpg"]
    chunk = _chunk(settings, sources, [T, T, T])
    assert len(chunk.runs) == 3
    assert chunk.runs[0].outcome is Outcome.SUCCEEDED
    assert chunk.runs[1].outcome is Outcome.TRANSIENT
    assert str(chunk.runs[1].error) == f"{P}: unexpected KeyError reading the source"
    # A name no file can have is the input's fault: terminal, with the reason.
    assert chunk.runs[2].outcome is Outcome.INVALID_IMAGE
    assert "no file has such a name (ValueError)" in str(chunk.runs[2].error)
    assert chunk.calls == 1


def test_the_event_loop_hop(settings: Settings, photos: list[str]) -> None:
    """The runtime's loop refusing work (it is stopping): URL fetches and the calls' hop."""

    def stopping(rt: Runtime) -> Callable[[Coroutine[Any, Any, Any]], Any]:
        def run(coro: Coroutine[Any, Any, Any]) -> Any:
            coro.close()
            raise RuntimeError("Event loop is closed")

        return run

    sources = [photos[0], "https://example.com/car.jpg"]
    chunk = _chunk(settings, sources, [T, T], run=stopping)
    assert _reasons(chunk) == [
        f"{P}: unexpected RuntimeError calling the vendor",
        f"{P}: unexpected RuntimeError fetching the source",
    ]
    assert chunk.runs[0].source is not None  # the file was read and prepared
    assert chunk.calls == 0


def test_preparing_sending_and_parsing(settings: Settings, photos: list[str]) -> None:
    sources = [*photos, photos[0]]
    chunk = _chunk(settings, sources, [BuildFails, InjectsHeader, ParseFails, T])
    assert _reasons(chunk) == [
        f"{P}: unexpected KeyError preparing the image: 'SecretId'",
        f"{P}: unexpected ValueError sending the request",
        f"{P}: unexpected KeyError in {P} adapter",
        "succeeded",
    ]
    assert [r.outcome for r in chunk.runs[:3]] == [Outcome.TRANSIENT] * 3
    build, send, parse, _ = chunk.runs
    assert build.call is None  # nothing was sent
    assert send.call is not None  # the slot was used and the call may have left: counted
    assert send.call.http_status is None
    assert parse.call is not None
    assert parse.call.http_status == 200  # the vendor answered (and may bill)
    assert chunk.calls == 2


@pytest.mark.parametrize(
    ("where", "exc", "reason"),
    [
        ("acquire", RuntimeError("limiter bug"), "waiting for the rate limiter"),
        ("acquire", KeyError("slot"), "waiting for the rate limiter"),
        ("in_flight", KeyError("cap"), "calling the vendor"),
    ],
)
def test_the_limiter(
    settings: Settings, photos: list[str], where: str, exc: BaseException, reason: str
) -> None:
    def faulty(inner: Limiter) -> Limiter:
        return FaultyLimiter(inner, where, exc)

    chunk = _chunk(settings, photos, [T, T, T], limiter=faulty)
    assert _reasons(chunk) == [
        "succeeded",
        f"{P}: unexpected {type(exc).__name__} {reason}",
        "succeeded",
    ]
    assert chunk.runs[1].call is None
    assert chunk.calls == 2


def test_a_limiter_failing_to_take_a_throttle_still_ends_the_job(
    settings: Settings, photos: list[str]
) -> None:
    def faulty(inner: Limiter) -> Limiter:
        return FaultyLimiter(inner, "penalize", RuntimeError("penalty bug"), fail_on={0})

    chunk = _chunk(settings, photos[:2], [Throttled, T], limiter=faulty)
    assert chunk.runs[0].outcome is Outcome.RATE_LIMITED  # the vendor's answer counts
    assert chunk.runs[0].call is not None
    assert chunk.runs[1].outcome is Outcome.SUCCEEDED
    assert chunk.calls == 2


def test_the_journal(settings: Settings, photos: list[str]) -> None:
    journal = FaultyJournal()
    chunk = _chunk(settings, photos, [T, T, T], journal=journal)
    reasons = _reasons(chunk)
    assert sorted(reasons) == sorted(
        ["succeeded", "succeeded", f"{P}: unexpected KeyError recording the call"]
    )
    failed = reasons.index(f"{P}: unexpected KeyError recording the call")
    assert chunk.runs[failed].call is None  # not written down, so not sent
    assert chunk.calls == 2
    assert sorted(journal.written) == sorted({0, 1, 2} - {failed})


def test_all_of_them_in_one_chunk(settings: Settings, photos: list[str]) -> None:
    """Every fault at once, with good jobs between them: each job has its own reason."""
    kinds: list[type[TencentVehicleLicense]] = [T, BuildFails, T, InjectsHeader, ParseFails, T]
    sources = [photos[i % 3] for i in range(len(kinds))]
    sources[2] = NamedStr(sources[2])

    def faulty(inner: Limiter) -> Limiter:  # the last of the four jobs that reach it
        return FaultyLimiter(inner, "acquire", KeyError("slot"), fail_on={3})

    chunk = _chunk(settings, sources, kinds, limiter=faulty, journal=FaultyJournal())
    reasons = _reasons(chunk)
    assert reasons[:3] == [
        "succeeded",
        f"{P}: unexpected KeyError preparing the image: 'SecretId'",
        f"{P}: unexpected KeyError reading the source",
    ]
    assert sorted(reasons[3:]) == sorted(
        [
            f"{P}: unexpected KeyError recording the call",  # the journal's second write
            f"{P}: unexpected KeyError in {P} adapter",
            f"{P}: unexpected KeyError waiting for the rate limiter",
        ]
    )
    assert chunk.calls == 2  # the good job, and the parse that failed after its answer
