"""The limiter's contract, run identically against RedisLimiter (real Redis) and LocalLimiter.

Hard invariants (never more than N calls in any trailing second, give-back reserves
nothing, caps hold) are asserted strictly; throughput and timings only with margins that
a loaded 2-core machine cannot eat. "Another worker" is another OS process for Redis and
another thread with its own event loop for the local limiter (see ratelimit_support).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from tests.worker.ratelimit_support import (
    Backend,
    hammer,
    penalize,
)
from worker.errors import LimiterBusy
from worker.ratelimit import Aimd, LocalLimiter, RedisLimiter, make_limiter
from worker.ratelimit.shared import OffsetBound
from worker.simulator.server import busiest_window

KINDS = ["local", pytest.param("redis", marks=pytest.mark.redis)]


def _backend(request: pytest.FixtureRequest, **kwargs: object) -> Iterator[Backend]:
    backend = Backend(request.param, **kwargs)  # type: ignore[arg-type]
    try:
        yield backend
    finally:
        backend.cleanup()


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield from _backend(request)


@pytest.fixture(params=KINDS)
def jitter_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    # A 100 ms jitter budget: the post-sleep stamps of several processes on a loaded
    # 2-core machine are the test's evidence, and a scheduler hiccup must not fail it.
    yield from _backend(request, margin=0.1)


@pytest.fixture(params=KINDS)
def aimd_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    # Fast recovery (0.5 -> 1.0 in 2.5 s) so a test can watch it; a cooldown that spans
    # the whole check, so an echo is recognised however slowly the machine runs.
    yield from _backend(request, aimd=Aimd(recover_per_second=0.2, cooldown=2.0))


def test_workers_together_never_exceed_the_limit_and_keep_going(jitter_backend: Backend) -> None:
    rate, duration = 20, 3.0
    started, results = jitter_backend.run_workers(hammer, "tencent:a", rate, duration, 5, copies=3)
    stamps = [stamp for result in results for stamp in result]

    assert busiest_window(stamps) <= rate  # strictly: this is what the vendor enforces
    assert all(len(result) > 0 for result in results)  # every worker got its share
    in_run = sum(started <= stamp < started + duration for stamp in stamps)
    # Liveness only: the limiter keeps calls flowing. How close it gets to the limit
    # (~0.97 N) is a speed figure, measured by bench/ratelimit.py, not asserted here.
    assert in_run >= 0.5 * rate * duration


def test_default_margin_never_exceeds_the_limit(backend: Backend) -> None:
    rate, duration = 20, 2.0

    async def main() -> tuple[float, list[float]]:
        async with backend.open() as limiter:
            await limiter.acquire("warm-up", rate, max_wait=1)  # connect outside the run
            started = time.time()
            return started, await hammer(limiter, "tencent:a", rate, duration, 10)

    started, stamps = asyncio.run(main())
    assert busiest_window(stamps) <= rate
    in_run = sum(started <= stamp < started + duration for stamp in stamps)
    assert in_run >= 0.5 * rate * duration  # liveness; the achieved rate is bench's job


@pytest.fixture(params=KINDS)
def wide_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    # A 200 ms jitter budget (100 ms of lateness tolerated): the tests below block the
    # loop far longer than that on purpose, and no ordinary hiccup comes close.
    yield from _backend(request, margin=0.2)


def test_a_caller_woken_late_reserves_again_instead_of_crowding_a_window(
    wide_backend: Backend,
) -> None:
    """Call 1 wakes 250 ms after its slot (the loop was blocked); sent then, it would be
    within one second of call N + 1. It must give the slot up and take the next one."""
    rate = 4  # slots T = 0.3 s apart; N + 1 = 5 slots span 1.2 s, a budget of 0.2 s
    interval = (1 + wide_backend.margin) / rate

    async def main() -> tuple[float, dict[int, float]]:
        async with wide_backend.open() as limiter:
            await limiter.acquire("warm-up", rate, max_wait=1)  # connect outside the run
            sent: dict[int, float] = {}

            async def caller(i: int) -> None:
                await limiter.acquire("k", rate, max_wait=10)
                sent[i] = time.monotonic()  # the step that checked lateness: no await between

            await caller(0)
            t0 = sent[0]
            tasks = [asyncio.create_task(caller(1))]
            await asyncio.sleep(0.05)  # caller 1 holds slot 1 (t0 + T) before the others ask
            tasks += [asyncio.create_task(caller(i)) for i in range(2, rate + 2)]
            # Block the event loop from just before slot 1 until 250 ms after it.
            await asyncio.sleep(max(0.0, t0 + interval - 0.01 - time.monotonic()))
            time.sleep(0.26)  # noqa: ASYNC251 - blocking the loop is the point
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=20)
            return t0, sent

    t0, sent = asyncio.run(main())
    assert busiest_window(list(sent.values())) <= rate  # strictly: what the vendor counts
    # Caller 1 went after every slot reserved when it woke (slots 2..N+1, up to t0 + 5T);
    # sent late, at ~t0 + T + 0.25, it would have been the fifth call in (t0 + 0.5, t0 + 1.5].
    assert sent[1] > t0 + (rate + 1) * interval - 0.01
    assert all(sent[i] < sent[1] for i in range(2, rate + 2))


def test_never_over_the_limit_while_the_loop_is_blocked_and_a_thread_hogs_the_cpu(
    wide_backend: Backend,
) -> None:
    """Every 0.4 s the event loop blocks for 0.25 s (more than the budget) while another
    thread spins in Python (GIL contention): late callers re-reserve; the calls that are
    sent never put more than N in any second."""
    rate, duration = 10, 3.0
    stop = threading.Event()

    def hog() -> None:
        n = 0
        while not stop.is_set():
            n += 1

    async def blocker(end: float) -> None:
        while time.monotonic() < end:
            await asyncio.sleep(0.15)
            time.sleep(0.25)  # noqa: ASYNC251 - blocking the loop is the point

    async def main() -> list[float]:
        async with wide_backend.open() as limiter:
            await limiter.acquire("warm-up", rate, max_wait=1)
            blocking = asyncio.create_task(blocker(time.monotonic() + duration))
            stamps = await hammer(limiter, "tencent:a", rate, duration, 8)
            await blocking
            return stamps

    thread = threading.Thread(target=hog, daemon=True)
    thread.start()
    try:
        stamps = asyncio.run(main())
    finally:
        stop.set()
        thread.join(10)
    assert busiest_window(stamps) <= rate  # strictly
    assert stamps  # liveness only; how fast is bench's job


def test_a_caller_that_would_wait_too_long_gives_back_without_reserving(
    backend: Backend,
) -> None:
    rate = 2.0  # slots 0.515 s apart at the default margin
    interval = (1 + backend.margin) / rate

    async def main() -> None:
        async with backend.open() as limiter:
            assert await limiter.acquire("k", rate, max_wait=1) < 0.2
            for _ in range(5):
                with pytest.raises(LimiterBusy) as busy:
                    await limiter.acquire("k", rate, max_wait=0.1)
                assert busy.value.key == "k"
                assert 0.1 < busy.value.wait <= interval
            # Had any give-back reserved a slot, this would wait >= 2 intervals.
            waited = await limiter.acquire("k", rate, max_wait=5)
            assert 0.2 < waited < 1.6 * interval

    asyncio.run(main())


def test_many_concurrent_callers_on_one_client_all_get_a_slot(backend: Backend) -> None:
    # One worker process keeps hundreds of calls waiting at once (threads x chunk). The
    # Redis client must queue them for a connection, not fail them: redis-py's asyncio
    # pool raised MaxConnectionsError past 100, and those jobs were given back for 5 s.
    callers = 300

    async def main() -> None:
        async with backend.open() as limiter:
            waits = await asyncio.gather(
                *(limiter.acquire("k", 100_000.0, max_wait=30) for _ in range(callers))
            )
            assert len(waits) == callers

    asyncio.run(main())


def test_max_wait_zero_takes_only_a_free_slot(backend: Backend) -> None:
    async def main() -> None:
        async with backend.open() as limiter:
            assert await limiter.acquire("k", 1.0, max_wait=0) < 0.2
            with pytest.raises(LimiterBusy):
                await limiter.acquire("k", 1.0, max_wait=0)

    asyncio.run(main())


def test_penalty_applies_to_every_worker_and_recovers(aimd_backend: Backend) -> None:
    rate = 5.0  # unpenalised slots 0.206 s apart; at half rate 0.412 s
    _, (penalized_at,) = aimd_backend.run_workers(penalize, "tencent:a")

    async def main() -> None:
        async with aimd_backend.open() as limiter:
            factor = await limiter.factor("tencent:a")
            # Halved by the other worker, recovering at 0.2/s since: allow 1.2 s to pass.
            assert 0.5 <= factor < 0.75
            assert await limiter.factor("tencent:b") == 1.0  # keys are independent

            await limiter.acquire("tencent:a", rate, max_wait=1)
            waited = await limiter.acquire("tencent:a", rate, max_wait=1)
            assert waited > (1 + aimd_backend.margin) / (rate * 0.75) - 0.02

            # An echo of the same overload within the cooldown does not cut again.
            await limiter.penalize("tencent:a")
            assert await limiter.factor("tencent:a") >= factor

            # Back to the full rate 2.5 s after the cut (the echo did not restart it).
            await asyncio.sleep(max(0.0, penalized_at + 2.6 - time.time()))
            assert await limiter.factor("tencent:a") == 1.0

    asyncio.run(main())


def test_repeated_throttles_cut_down_to_the_floor(backend: Backend) -> None:
    async def main() -> None:
        async with backend.open() as limiter:
            factors = []
            for _ in range(4):
                await limiter.penalize("k")
                factors.append(await limiter.factor("k"))
                await asyncio.sleep(backend.aimd.cooldown + 0.05)
            # 0.5, 0.275, 0.16, then the 0.1 floor: halved after ~0.05/s of recovery.
            assert factors[0] == pytest.approx(0.5, abs=0.02)
            assert factors[1] == pytest.approx(0.275, abs=0.05)
            assert 0.1 <= factors[3] < 0.16  # 0.106 on time; slack for slow sleeps

    asyncio.run(main())


def test_retry_after_holds_every_slot_back(backend: Backend) -> None:
    async def main() -> None:
        async with backend.open() as limiter:
            await limiter.penalize("k", retry_after=0.6)
            with pytest.raises(LimiterBusy) as busy:
                await limiter.acquire("k", 100, max_wait=0.2)
            assert 0.3 < busy.value.wait <= 0.6
            assert await limiter.acquire("k", 100, max_wait=2) > 0.3
            assert await limiter.acquire("other", 100, max_wait=0.1) < 0.1

    asyncio.run(main())


def test_keys_are_independent(backend: Backend) -> None:
    async def main() -> None:
        async with backend.open() as limiter:
            await limiter.acquire("juhe_car:1", 0.5, max_wait=1)
            with pytest.raises(LimiterBusy):
                await limiter.acquire("juhe_car:1", 0.5, max_wait=1)
            assert await limiter.acquire("juhe_car:2", 0.5, max_wait=0) < 0.1
            assert await limiter.acquire("tencent:1", 0.5, max_wait=0) < 0.1

    asyncio.run(main())


def test_in_flight_cap_holds(backend: Backend) -> None:
    async def peak(cap: int | None, tasks: int) -> int:
        async with backend.open() as limiter:
            now = top = 0

            async def call() -> None:
                nonlocal now, top
                async with limiter.in_flight("k", cap):
                    now += 1
                    top = max(top, now)
                    await asyncio.sleep(0.02)
                    now -= 1

            await asyncio.gather(*(call() for _ in range(tasks)))
            return top

    assert asyncio.run(peak(3, 12)) == 3
    assert asyncio.run(peak(None, 12)) == 12


def test_in_flight_place_of_a_cancelled_waiter_is_not_lost(backend: Backend) -> None:
    async def main() -> None:
        async with backend.open() as limiter:
            gate = limiter.in_flight("k", 1)
            entered = asyncio.Event()

            async def wait_turn() -> None:
                async with limiter.in_flight("k", 1):
                    entered.set()

            async with gate:
                cancelled = asyncio.create_task(wait_turn())
                await asyncio.sleep(0.01)  # both waiting behind the holder
                third = asyncio.create_task(wait_turn())
                await asyncio.sleep(0.01)
            # The holder just handed its place to `cancelled`; cancel before it runs.
            cancelled.cancel()
            await asyncio.wait_for(third, timeout=5)
            assert entered.is_set()
            with pytest.raises(asyncio.CancelledError):
                await cancelled

            async with asyncio.timeout(5):  # and the place is free again afterwards
                async with limiter.in_flight("k", 1):
                    pass

    asyncio.run(main())


def test_local_in_flight_cap_spans_threads_and_loops() -> None:
    limiter = LocalLimiter()
    lock = threading.Lock()
    now = top = 0

    async def calls() -> None:
        async def call() -> None:
            nonlocal now, top
            async with limiter.in_flight("k", 2):
                with lock:
                    now += 1
                    top = max(top, now)
                await asyncio.sleep(0.01)
                with lock:
                    now -= 1

        await asyncio.gather(*(call() for _ in range(10)))

    threads = [threading.Thread(target=asyncio.run, args=(calls(),)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert top == 2


def test_bad_arguments_are_refused() -> None:
    async def main() -> None:
        limiter = LocalLimiter()
        with pytest.raises(ValueError, match="rate"):
            await limiter.acquire("k", 0, max_wait=1)
        with pytest.raises(ValueError, match="max_wait"):
            await limiter.acquire("k", 1, max_wait=-1)
        with pytest.raises(ValueError, match="cap"):
            limiter.in_flight("k", 0)

    asyncio.run(main())
    with pytest.raises(ValueError, match="decrease"):
        Aimd(decrease=1.0)


def test_make_limiter_picks_redis_only_with_a_url() -> None:
    async def main() -> None:
        local = make_limiter(None, margin=0.05)
        assert isinstance(local, LocalLimiter)
        assert local.margin == 0.05
        shared = make_limiter("redis://127.0.0.1:6379/15", margin=0.05)
        assert isinstance(shared, RedisLimiter)
        assert shared.margin == 0.05
        await shared.aclose()

    asyncio.run(main())


def test_the_clock_offset_bound_follows_a_clock_stepping_back() -> None:
    # Samples are (our wall clock at sending) - (Redis's TIME); the bound is the largest
    # recent one. Our clock steps back 50 ms at t=5: within two 10 s buckets the bound
    # follows, where an all-time maximum would under-count every transit by 50 ms forever.
    bound = OffsetBound(bucket=10.0)
    bound.add(0.250, now=0.0)
    bound.add(0.252, now=1.0)  # a faster request gives a larger sample, a tighter bound
    assert bound.value == 0.252
    bound.add(0.200, now=5.0)
    assert bound.value == 0.252  # still counted: the estimate over-counts, never under-
    bound.add(0.200, now=12.0)  # a new bucket; the last one still counts
    assert bound.value == 0.252
    bound.add(0.201, now=23.0)
    assert bound.value == 0.201
    bound.add(0.150, now=100.0)  # after an idle spell nothing old is kept
    assert bound.value == 0.150
