"""The limiter's contract, run identically against RedisLimiter (real Redis) and LocalLimiter.

Hard invariants (never more than N calls in any trailing second, give-back reserves
nothing, caps hold) are asserted strictly; throughput and timings only with margins that
a loaded 2-core machine cannot eat. "Another worker" is another OS process for Redis and
another thread with its own event loop for the local limiter (see ratelimit_support).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Iterator

import pytest

from tests.worker.ratelimit_support import (
    Backend,
    P,
    call_vendor,
    flush_test_db,
    hammer,
    penalize,
)
from worker.errors import LimiterBusy
from worker.ratelimit import Aimd, AtSlot, LocalLimiter, RedisLimiter, make_limiter
from worker.ratelimit.shared import OffsetBound
from worker.settings import settings_from_env
from worker.simulator.environment import base_urls, made_up_credentials
from worker.simulator.server import SimulatorThread, busiest_window

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
    # Halving cuts and a fast climb (0.5 -> 1.0 in under 3 s: 0.5/s to 0.9, a 0.1 band
    # per second to 1.0) so a test can watch it, slow enough that a cut lasts.
    aimd = Aimd(decrease=0.5, recover_per_second=0.5, probe_band=0.1, probe_seconds=1.0)
    yield from _backend(request, aimd=aimd)


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
def cut_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    # Halving cuts and next to no climb, so a cut's effect stays put while a test looks;
    # a 100 ms jitter budget for the stamps of a saturated run.
    aimd = Aimd(decrease=0.5, recover_per_second=0.001, probe_seconds=100.0, cooldown=0.5)
    yield from _backend(request, margin=0.1, aimd=aimd)


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
            # A new schedule's first slot is `lead` + one interval away (see the contract).
            first = await limiter.acquire("k", rate, max_wait=2)
            assert first.waited < backend.lead + interval + 0.2
            for _ in range(5):
                with pytest.raises(LimiterBusy) as busy:
                    await limiter.acquire("k", rate, max_wait=0.1)
                assert busy.value.key == "k"
                assert 0.1 < busy.value.wait <= interval
            # Had any give-back reserved a slot, this would wait >= 2 intervals.
            slot = await limiter.acquire("k", rate, max_wait=5)
            assert 0.2 < slot.waited < 1.6 * interval

    asyncio.run(main())


def test_at_slot_runs_as_the_slot_comes_due_and_is_undone_when_it_costs_the_slot(
    backend: Backend,
) -> None:
    # What the pipeline writes down before a call (its attempt row) runs as the slot comes
    # due; a slow write makes the call late, so the slot is forfeited and the write undone
    # before the caller reserves again: nothing of it stands while the caller waits.
    rate = 2.0
    interval = (1 + backend.margin) / rate
    events: list[tuple[str, float]] = []

    def done() -> list[str]:
        names = [name for name, _ in events]
        events.clear()
        return names

    async def due() -> None:
        events.append(("due", time.monotonic()))

    async def slow_due() -> None:  # far past the jitter budget
        events.append(("due", time.monotonic()))
        await asyncio.sleep(0.3)

    async def slow_once() -> None:
        if not events:
            await slow_due()
        else:
            await due()

    async def undo() -> None:
        events.append(("undo", time.monotonic()))

    async def broken() -> None:
        raise KeyError("journal")

    async def main() -> None:
        async with backend.open() as limiter:
            await limiter.acquire("k", rate, max_wait=2)  # the schedule begins
            asked = time.monotonic()
            await limiter.acquire("k", rate, max_wait=5, at_slot=AtSlot(due, undo))
            assert events[0][1] - asked > interval - 0.1  # at the slot, not when reserved
            assert done() == ["due"]

            await limiter.acquire("k", rate, max_wait=5, at_slot=AtSlot(slow_once, undo))
            # At the next slot, not at once after the undo (sent then, it would have
            # left 0.3 s after its own slot).
            assert events[2][1] - events[0][1] > interval - 0.05
            assert done() == ["due", "undo", "due"]

            # The next slot is beyond the budget once this one is lost: given back, with
            # its write undone.
            with pytest.raises(LimiterBusy):
                await limiter.acquire("k", rate, max_wait=0.7, at_slot=AtSlot(slow_due, undo))
            assert done() == ["due", "undo"]

            with pytest.raises(KeyError):  # a write that failed has nothing to undo
                await limiter.acquire("k", rate, max_wait=5, at_slot=AtSlot(broken, undo))
            assert done() == []

    asyncio.run(main())


def test_a_slow_due_stands_for_a_next_slot_at_hand(backend: Backend) -> None:
    # At a high rate the slot after a forfeited one is immediate: the write stands for it
    # (one write, no withdrawal), where a real wait would have it undone and written again.
    events: list[str] = []

    async def slow_due() -> None:
        events.append("due")
        await asyncio.sleep(0.1)  # far past the jitter budget

    async def undo() -> None:
        events.append("undo")

    async def main() -> None:
        async with backend.open() as limiter:
            await limiter.acquire("k", 1000.0, max_wait=2)
            await limiter.acquire("k", 1000.0, max_wait=2, at_slot=AtSlot(slow_due, undo))
            assert events == ["due"]

    asyncio.run(main())


def test_many_concurrent_callers_on_one_client_all_get_a_slot(backend: Backend) -> None:
    # One worker process keeps hundreds of calls waiting at once (threads x chunk). The
    # Redis client must queue them for a connection, not fail them: redis-py's asyncio
    # pool raised MaxConnectionsError past 100, and those jobs were given back for 5 s.
    callers = 300

    async def main() -> None:
        async with backend.open() as limiter:
            slots = await asyncio.gather(
                *(limiter.acquire("k", 100_000.0, max_wait=30) for _ in range(callers))
            )
            assert len(slots) == callers

    asyncio.run(main())


def test_max_wait_zero_takes_only_a_free_slot(backend: Backend) -> None:
    rate = 10.0

    async def main() -> None:
        async with backend.open() as limiter:
            await limiter.acquire("k", rate, max_wait=1)  # the schedule begins
            await asyncio.sleep(2 * (1 + backend.margin) / rate)  # the next slot is free
            assert (await limiter.acquire("k", rate, max_wait=0)).waited < 0.2
            with pytest.raises(LimiterBusy):
                await limiter.acquire("k", rate, max_wait=0)

    asyncio.run(main())


def test_a_new_schedule_starts_lead_after_it_is_first_asked_for(backend: Backend) -> None:
    """What lets a lost state restart safely: a schedule that begins (a new key, or one
    whose state is gone) has no slot before ``lead`` + one interval from its first request."""
    rate = 5.0
    interval = (1 + backend.margin) / rate

    async def main() -> None:
        async with backend.open() as limiter:
            with pytest.raises(LimiterBusy) as busy:
                await limiter.acquire("k", rate, max_wait=backend.lead)
            assert busy.value.wait == pytest.approx(backend.lead + interval, abs=0.01)
            # The refused call began the schedule: what it saw is what the next one gets.
            slot = await limiter.acquire("k", rate, max_wait=1)
            assert backend.lead + interval - 0.05 < slot.waited < backend.lead + interval + 0.3

    asyncio.run(main())


@pytest.mark.redis
def test_a_flush_during_a_saturated_run_never_lets_a_second_exceed_the_limit() -> None:
    """Three processes keep 30 callers waiting for slots of one key (1.5 s of schedule)
    when the limiter's Redis DB is flushed. Those holding slots confirm them before
    sending, find their schedule gone and reserve again behind the new one; the new one
    starts after every slot that may still go out. Before, the vendor saw both schedules
    at once: 38 calls in one second against 20."""
    rate, duration = 20, 4.0
    backend = Backend("redis", margin=0.1)  # jitter budget: several processes' stamps
    flushed: list[float] = []

    def flush_mid_run() -> None:
        time.sleep(1.5)
        flush_test_db()
        flushed.append(time.time())

    try:
        started, results = backend.run_workers(
            hammer, "tencent:a", rate, duration, 10, copies=3, alongside=flush_mid_run
        )
    finally:
        backend.cleanup()
    stamps = [stamp for result in results for stamp in result]
    assert flushed
    assert busiest_window(stamps) <= rate  # strictly: what the vendor enforces
    after = [stamp for stamp in stamps if flushed[0] < stamp < started + duration]
    assert len(after) >= 0.5 * rate * (started + duration - flushed[0])  # and it kept going


@pytest.mark.redis
def test_a_holder_of_a_slot_whose_state_was_lost_reserves_again() -> None:
    rate = 2.0  # slots 0.515 s apart
    backend = Backend("redis")

    async def main() -> None:
        async with backend.open() as limiter:
            first = await limiter.acquire("k", rate, max_wait=2)
            holder = asyncio.create_task(limiter.acquire("k", rate, max_wait=5))
            await asyncio.sleep(0.1)  # it holds the next slot, ~0.4 s from now
            await asyncio.to_thread(flush_test_db)
            newcomer = await limiter.acquire("k", rate, max_wait=5)
            held = await holder
            # The holder's slot was gone with the state: it did not send in it but reserved
            # again in the new schedule (after the newcomer, unless the machine stalled
            # long enough for the holder to begin it), one interval from the newcomer's.
            assert newcomer.generation != first.generation
            assert held.generation == newcomer.generation
            assert abs(held.at - newcomer.at) >= (1 + backend.margin) / rate - 1e-3

    try:
        asyncio.run(main())
    finally:
        backend.cleanup()


def test_a_cut_respaces_the_calls_reserved_before_it(cut_backend: Backend) -> None:
    """Ten callers keep 0.5 s of slots reserved at 20/s when a throttle halves the rate:
    from ``lead`` after the cut on, every call goes at the new spacing (the old slots are
    reserved again), where before the old ones went out on top of the new schedule."""
    rate, key = 20, "tencent:a"
    backend = cut_backend

    async def main() -> tuple[float, list[float]]:
        async with backend.open() as limiter:
            await limiter.acquire(key, rate, max_wait=1)
            stamps_task = asyncio.create_task(hammer(limiter, key, rate, 3.5, 10))
            await asyncio.sleep(1.5)
            slot = await limiter.acquire(key, rate, max_wait=5)
            assert await limiter.penalize(key, slot)
            return time.time(), await stamps_task

    cut_at, stamps = asyncio.run(main())
    after = [stamp for stamp in stamps if stamp > cut_at + backend.lead + 0.02]
    assert after
    assert busiest_window(after) <= rate * 0.5  # halved, strictly, from lead on


def test_one_cut_per_throttling_episode(cut_backend: Backend) -> None:
    """A throttle of a call reserved before the last cut, or sent within ``cooldown`` of
    the schedule it began, is an echo of the same overload: no second cut."""
    rate, key = 100.0, "tencent:a"
    backend = cut_backend

    async def main() -> None:
        async with backend.open() as limiter:
            before = await limiter.acquire(key, rate, max_wait=1)
            also_before = await limiter.acquire(key, rate, max_wait=1)
            assert await limiter.penalize(key, before)  # the episode's first throttle cuts
            cut = await limiter.factor(key)
            assert cut == pytest.approx(0.5, abs=0.02)
            assert not await limiter.penalize(key, also_before)  # reserved before the cut
            early = await limiter.acquire(key, rate, max_wait=1)
            assert early.generation != before.generation
            assert not await limiter.penalize(key, early)  # the vendor still counts old calls
            assert await limiter.factor(key) >= cut
            # Past the cooldown after the new schedule began (`lead` after the cut).
            await asyncio.sleep(backend.lead + backend.aimd.cooldown + 0.05)
            later = await limiter.acquire(key, rate, max_wait=1)
            assert await limiter.penalize(key, later)  # still throttled: a new episode
            assert await limiter.factor(key) < cut

    asyncio.run(main())


def test_penalty_applies_to_every_worker_and_climbs_back_as_aimd_says(
    aimd_backend: Backend,
) -> None:
    """Another worker's cut slows this one down; the factor then follows
    :meth:`Aimd.climb` (fast to the band below the ceiling, slowly through it, fast again),
    read between two clock readings so a slow machine cannot fail it."""
    aimd, key = aimd_backend.aimd, "tencent:a"
    before = time.time()
    _, (penalized_at,) = aimd_backend.run_workers(penalize, key)

    async def main() -> None:
        async with aimd_backend.open() as limiter:
            assert await limiter.factor("tencent:b") == 1.0  # keys are independent
            samples = 0
            while samples < 12:
                low = time.time() - penalized_at
                factor = await limiter.factor(key)
                high = time.time() - before
                assert aimd.climb(0.5, 1.0, low) - 1e-3 <= factor
                assert factor <= aimd.climb(0.5, 1.0, high) + 1e-3
                samples += 1
                await asyncio.sleep(0.25)
            assert factor == 1.0  # back at the configured rate

    asyncio.run(main())


def test_repeated_throttles_cut_down_to_the_floor(cut_backend: Backend) -> None:
    aimd, backend = cut_backend.aimd, cut_backend

    async def main() -> None:
        async with backend.open() as limiter:
            factors = []
            for _ in range(6):
                await asyncio.sleep(backend.lead + aimd.cooldown + 0.05)
                slot = await limiter.acquire("k", 1000.0, max_wait=2)
                assert await limiter.penalize("k", slot)
                factors.append(await limiter.factor("k"))
            # Each cut from where the last left it (which climbs, very slowly, meanwhile).
            assert all(b < a + 0.01 for a, b in itertools.pairwise(factors))
            assert factors[0] == pytest.approx(0.5, abs=0.02)
            assert factors[-1] == pytest.approx(aimd.floor, abs=0.02)

    asyncio.run(main())


def test_aimd_cuts_gently_where_the_last_cut_was_and_climbs_in_three_stages() -> None:
    aimd = Aimd(decrease=0.7, recover_per_second=0.05, probe_band=0.05, probe_seconds=20)
    assert aimd.cut(1.0, None) == pytest.approx(0.7)  # the first cut
    assert aimd.cut(0.8, 1.0) == pytest.approx(0.56)  # far from the last ceiling
    assert aimd.cut(0.98, 1.0) == pytest.approx(0.882)  # near it: the limit is there
    assert aimd.cut(0.1, 0.5) == aimd.floor
    # From 0.56 after a cut at 0.8: 0.05/s up to 0.76, then 0.8 x 0.05 per 20 s through
    # 0.76 .. 0.84, then 0.05/s again up to 1.
    assert aimd.climb(0.56, 0.8, 2.0) == pytest.approx(0.66)
    assert aimd.climb(0.56, 0.8, 4.0) == pytest.approx(0.76)
    assert aimd.climb(0.56, 0.8, 14.0) == pytest.approx(0.78)
    assert aimd.climb(0.56, 0.8, 44.0) == pytest.approx(0.84)
    assert aimd.climb(0.56, 0.8, 46.0) == pytest.approx(0.94)
    assert aimd.climb(0.56, 0.8, 100.0) == 1.0
    assert aimd.recovery_seconds == pytest.approx(0.9 / 0.05 + 40)


def test_retry_after_holds_every_slot_back(backend: Backend) -> None:
    async def main() -> None:
        async with backend.open() as limiter:
            slot = await limiter.acquire("k", 100, max_wait=1)
            await limiter.penalize("k", slot, retry_after=0.6)
            with pytest.raises(LimiterBusy) as busy:
                await limiter.acquire("k", 100, max_wait=0.2)
            assert 0.3 < busy.value.wait <= 0.6
            assert (await limiter.acquire("k", 100, max_wait=2)).waited > 0.3
            assert (await limiter.acquire("other", 100, max_wait=1)).waited < 0.3

    asyncio.run(main())


def test_keys_are_independent(backend: Backend) -> None:
    async def main() -> None:
        async with backend.open() as limiter:
            slot = await limiter.acquire("juhe_car:1", 10, max_wait=1)
            await limiter.penalize("juhe_car:1", slot, retry_after=30)
            with pytest.raises(LimiterBusy):
                await limiter.acquire("juhe_car:1", 10, max_wait=1)
            assert (await limiter.acquire("juhe_car:2", 10, max_wait=1)).waited < 0.5
            assert (await limiter.acquire("tencent:1", 10, max_wait=1)).waited < 0.5

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


def test_throttling_below_the_configured_rate_converges_to_the_vendors_limit(
    jitter_backend: Backend,
) -> None:
    """vrec configured at 15/s, the vendor (the simulator) allowing 10/s, every call the
    pipeline's own (slot, signed request, answer, penalty on a throttle), two workers.
    After the first episodes the limiter settles just under the vendor's limit: the rate
    the vendor admitted over the last 14 s is within 10% of it, and throttles are rare.
    Before, each throttle of a call reserved at the old spacing cut again, down to the
    floor: 52% of the vendor's limit. (A 100 ms jitter budget: on a loaded machine, callers
    woken more than 15 ms late would forfeit enough slots to cost the rate by themselves;
    the rate the penalty settles at is what this test is about.)"""
    limit, duration, window = 10, 28.0, 14.0
    env = made_up_credentials()
    env["VREC_SIMULATOR__LIMITS"] = json.dumps({P: limit})
    env["VREC_SIMULATOR__LATENCY_MS"] = json.dumps([50, 300])
    with SimulatorThread(settings_from_env(env), providers=[P]) as server:
        assert server.simulator is not None
        stats = server.simulator.stats[P]
        env.update(base_urls(settings_from_env(env), server.base_url))
        env[f"VREC_{P.upper()}__RATE"] = "15"
        counts: list[tuple[float, int, int, int]] = []  # (time, calls, admitted, throttled)

        def count_late_window() -> None:  # the vendor's counts as the window opens, closes
            released = time.monotonic()
            for at in (duration - window, duration):
                time.sleep(max(0.0, released + at - time.monotonic()))
                counts.append((time.monotonic(), stats.calls, stats.admitted, stats.throttled))

        jitter_backend.run_workers(
            call_vendor, env, duration, 8, copies=2, alongside=count_late_window
        )
    (t0, calls0, admitted0, throttled0), (t1, calls1, admitted1, throttled1) = counts
    achieved = (admitted1 - admitted0) / (t1 - t0)
    assert achieved >= 0.9 * limit  # and never above it: the vendor admits at most that
    assert throttled1 - throttled0 <= 0.05 * (calls1 - calls0)
