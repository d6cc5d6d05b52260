"""worker.pipeline.run_job against the simulator over loopback: one job, no Celery, no DB."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.vendors import provider_block
from worker.config import Settings
from worker.errors import CallNotRecorded, Outcome
from worker.jobrun import JobRun
from worker.pipeline import JobSpec, process_jobs
from worker.providers.base import VendorAnswer, VendorResponse
from worker.providers.registry import get_provider
from worker.ratelimit import Limiter, LocalLimiter, RedisLimiter
from worker.simulator.environment import point_at
from worker.simulator.samples import licence_page
from worker.simulator.server import run_simulator

P = "tencent_vehicle_license"


async def run_job(
    spec: JobSpec, *, session: aiohttp.ClientSession, limiter: Limiter, settings: Settings
) -> JobRun:
    """One job from async code: process_jobs in a worker thread, its I/O on this loop (as a
    task thread hands its I/O to the runtime's loop)."""
    loop = asyncio.get_running_loop()

    def on_loop(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    runs = await asyncio.to_thread(
        process_jobs, [spec], run=on_loop, session=session, limiter=limiter, settings=settings
    )
    return runs[0]


def _run(
    settings: Settings,
    source: str,
    *,
    expected_sha256: str | None = None,
    limiter: Limiter | None = None,
    provider_settings: Settings | None = None,
    rate: float | None = None,
) -> JobRun:
    async def go() -> JobRun:
        async with (
            run_simulator(settings, providers=[P]) as (url, _sim),
            aiohttp.ClientSession() as session,
        ):
            pointed = point_at(provider_settings or settings, url, [P])
            if rate is not None:
                block = pointed.provider(P).model_copy(update={"rate": rate})
                pointed = pointed.model_copy(update={"tencent_vehicle_license": block})
            provider = get_provider(P, pointed)
            lim = limiter or LocalLimiter(margin=0.03)
            try:
                return await run_job(
                    JobSpec(provider, source, {"card_side": "FRONT"}, expected_sha256),
                    session=session,
                    limiter=lim,
                    settings=settings.model_copy(update={"limiter_max_wait_seconds": 1.0}),
                )
            finally:
                await lim.aclose()

    return asyncio.run(go())


def test_success_records_the_call_and_the_source(settings: Settings, tmp_path: Path) -> None:
    data = licence_page("FRONT", 1, (900, 600))
    path = tmp_path / "car.jpg"
    path.write_bytes(data)
    run = _run(settings, str(path), expected_sha256=hashlib.sha256(data).hexdigest())
    assert run.outcome is Outcome.SUCCEEDED
    assert run.answer is not None
    assert run.answer.readings
    assert run.call is not None
    assert (run.call.http_status, run.call.billed) == (200, True)
    assert run.source is not None
    assert (run.source.width, run.source.height, run.source.format) == (900, 600, "JPEG")


def test_changed_or_missing_sources_are_invalid(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "car.jpg"
    path.write_bytes(licence_page("FRONT", 2, (900, 600)))
    changed = _run(settings, str(path), expected_sha256="0" * 64)
    assert changed.error is not None
    assert changed.error.message == "source changed since it was submitted (sha256 differs)"
    assert changed.call is None
    missing = _run(settings, str(tmp_path / "gone.jpg"))
    assert missing.outcome is Outcome.INVALID_IMAGE
    assert "cannot read source file" in str(missing.error)


def test_no_credentials_means_provider_unavailable_without_a_call(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "car.jpg"
    path.write_bytes(licence_page("FRONT", 3, (900, 600)))
    block = settings.provider(P).model_copy(update={"secret_key": None})
    bare = settings.model_copy(update={"tencent_vehicle_license": block})
    run = _run(settings, str(path), provider_settings=bare)
    assert run.outcome is Outcome.PROVIDER_UNAVAILABLE
    assert run.call is None


def test_busy_or_unreachable_limiter_gives_the_job_back(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "car.jpg"
    path.write_bytes(licence_page("FRONT", 4, (900, 600)))
    busy = _run(settings, str(path), rate=0.01)  # a new schedule's first slot in ~100 s > 1 s
    assert busy.give_back is not None
    assert busy.give_back > 1
    assert busy.call is None
    down = _run(settings, str(path), limiter=RedisLimiter("redis://127.0.0.1:9/0"))
    assert down.give_back == 5.0
    assert down.call is None


def test_process_job_from_a_task_thread_uses_the_runtime_loop(
    settings: Settings, tmp_path: Path
) -> None:
    from worker.runtime import Runtime
    from worker.simulator.server import SimulatorThread

    path = tmp_path / "back.jpg"
    path.write_bytes(licence_page("BACK", 5, (900, 600)))
    with SimulatorThread(settings, providers=[P]) as sim:
        pointed = point_at(settings, sim.base_url, [P])
        rt = Runtime(pointed)
        try:
            provider = rt.provider(P)
            ok, bad = process_jobs(
                [
                    JobSpec(provider, str(path), {"card_side": "BACK"}, None),
                    JobSpec(provider, str(tmp_path / "missing.jpg"), {}, None),
                ],
                run=rt.run,
                session=rt.http,
                limiter=rt.limiter,
                settings=pointed,
            )
        finally:
            rt.close()
    assert ok.outcome is Outcome.SUCCEEDED
    assert ok.answer is not None
    assert [r.side for r in ok.answer.readings] == ["BACK"]  # type: ignore[union-attr]
    assert bad.outcome is Outcome.INVALID_IMAGE
    assert bad.call is None


def test_a_broken_adapter_is_transient_and_its_call_still_counted(
    settings: Settings, tmp_path: Path
) -> None:
    from worker.providers.tencent_vehicle_license import (
        TencentVehicleLicense,
        TencentVehicleLicenseSettings,
    )

    class Broken(TencentVehicleLicense):
        def parse_response(self, response: VendorResponse) -> VendorAnswer:
            raise RuntimeError("bug")

    path = tmp_path / "car.jpg"
    path.write_bytes(licence_page("FRONT", 6, (900, 600)))

    async def go() -> JobRun:
        async with (
            run_simulator(settings, providers=[P]) as (url, _sim),
            aiohttp.ClientSession() as session,
        ):
            block = provider_block(point_at(settings, url, [P]), TencentVehicleLicenseSettings)
            provider = Broken(block)
            limiter = LocalLimiter(margin=0.03)
            spec = JobSpec(provider, str(path), {}, None)
            try:
                return await run_job(spec, session=session, limiter=limiter, settings=settings)
            finally:
                await limiter.aclose()

    run = asyncio.run(go())
    assert run.outcome is Outcome.TRANSIENT
    assert "unexpected RuntimeError" in str(run.error)
    assert run.call is not None  # the vendor answered: one attempt row
    assert run.call.http_status == 200


class _Journal:
    """A CallJournal that notes what the vendor had seen when each call was written down,
    or refuses to write (the database gone)."""

    def __init__(self, calls_seen: Callable[[], int], *, refuse: bool = False) -> None:
        self._calls_seen = calls_seen
        self._refuse = refuse
        self.written: list[tuple[int, int]] = []  # (index, vendor's calls at that moment)

    async def calling(self, index: int, started_at: datetime) -> None:
        if self._refuse:
            raise CallNotRecorded(P, "OperationalError: the database is gone")
        self.written.append((index, self._calls_seen()))

    async def withdraw(self, index: int) -> None:
        self.written = [(i, seen) for i, seen in self.written if i != index]


def _journaled(
    settings: Settings, paths: list[Path], *, refuse: bool
) -> tuple[list[JobRun], int, _Journal]:
    from worker.runtime import Runtime
    from worker.simulator.server import SimulatorThread

    with SimulatorThread(settings, providers=[P]) as sim:
        assert sim.simulator is not None
        stats = sim.simulator.stats[P]
        journal = _Journal(lambda: stats.calls, refuse=refuse)
        pointed = point_at(settings, sim.base_url, [P])
        rt = Runtime(pointed)
        try:
            provider = rt.provider(P)
            runs = process_jobs(
                [JobSpec(provider, str(p), {}, None) for p in paths],
                run=rt.run,
                session=rt.http,
                limiter=rt.limiter,
                settings=pointed,
                journal=journal,
            )
        finally:
            rt.close()
        return runs, stats.calls, journal


def test_each_call_is_written_down_before_its_request_and_not_sent_unwritten(
    settings: Settings, tmp_path: Path
) -> None:
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"car{i}.jpg")
        paths[-1].write_bytes(licence_page("FRONT", 10 + i, (900, 600)))
    paths.insert(1, tmp_path / "missing.jpg")  # no call, so never written down

    runs, calls, journal = _journaled(settings, paths, refuse=False)
    assert [r.outcome for r in runs] == [
        Outcome.SUCCEEDED,
        Outcome.INVALID_IMAGE,
        Outcome.SUCCEEDED,
        Outcome.SUCCEEDED,
    ]
    assert calls == 3
    assert sorted(index for index, _ in journal.written) == [0, 2, 3]
    # Slots are spaced by the limiter, so each call was written down before its own
    # request reached the vendor: at most the calls before it had arrived.
    assert sorted(seen for _, seen in journal.written) == [0, 1, 2]

    runs, calls, journal = _journaled(settings, paths[:1], refuse=True)
    assert calls == 0  # unrecorded, so not sent
    assert runs[0].call is None
    assert runs[0].give_back == 5.0  # the job goes back, uncharged
