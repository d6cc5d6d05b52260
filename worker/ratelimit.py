"""Vendor quotas held by every worker together: one limiter per provider credential.

Celery's own ``rate_limit`` is per worker instance (two instances send twice the quota)
and degrades badly on Redis, so vrec paces each vendor call itself, right before the HTTP
request. :class:`RedisLimiter` shares its state through one Lua script on Redis, using
Redis's own clock (``TIME``), so all processes on all machines draw from one schedule;
:class:`LocalLimiter` is the embedded-mode twin with the same contract, in-process.
:func:`make_limiter` picks one. Keys are ``f"{provider}:{credential_id}"``.

The schedule: GCRA with zero burst
----------------------------------
Every reservation takes the next *slot*: ``slot = max(now, not_before, last + T)`` with
``T = (1 + margin) / (rate * factor)``, and the caller sleeps until its slot, then sends.
Consecutive slots are therefore at least ``T`` apart, always (whatever the concurrency,
the number of processes, or the idle time before), and ``N + 1`` consecutive slots span
at least ``N * T = (1 + margin) * N / rate``: with ``rate = N`` calls/s that is
``1 + margin`` seconds. The vendor counts *arrivals* over any trailing second; an arrival
is the slot plus a delay (event-loop wake-up, Redis round trip, network). ``N + 1``
arrivals fall within one second only if the delays of calls ``i`` and ``i + N`` differ by
more than ``margin`` seconds, so ``margin`` is the jitter budget in seconds,
independent of ``N``: the default 0.03 absorbs 30 ms of differential jitter and yields
``1 / 1.03 = 0.971`` of the limit.

Why not a sliding window of reserved slot times (at most N in any ``(t - W, t]``,
``W = 1 + margin``)? It has exactly the same throughput (``N / W``) and the same jitter
budget (slots ``i`` and ``i + N`` are ``W`` apart either way; no schedule of long-run rate
``N / (1 + m)`` can do better, since its *average* N-gap is ``1 + m``). But it sends
bursts of N calls at once, which crowds the event loop's wake-ups, hits vendors that also
count concurrency or sub-second buckets, and needs a sorted set per key; and an integer
window count handles neither fractional rates nor a multiplicative penalty gracefully.
GCRA spreads calls evenly, needs four numbers of state, and a penalty simply stretches
``T``. The only cost is latency when idle: two calls arriving together are ``T`` apart
instead of both going at once; for a batch worker that is irrelevant.

Give-back: if the slot is more than ``max_wait`` away, :class:`~worker.errors.LimiterBusy`
is raised and *nothing* is reserved, so the job goes back to the queue without pushing
later callers back. A caller cancelled while sleeping until its slot forfeits the slot
(GCRA cannot hand a slot back); that only costs throughput, never the limit.

Penalty (AIMD), shared
----------------------
A throttling answer (:meth:`Limiter.penalize`) multiplies the key's *factor* by
``Aimd.decrease`` (floor ``Aimd.floor``) and it climbs back by ``Aimd.recover_per_second``
of the configured rate per second; the state lives next to the schedule (in Redis, with a
TTL), so every worker slows down at once. Throttle answers within ``Aimd.cooldown`` of a
cut are echoes of the same overload (the calls were already in flight) and do not cut
again, as TCP cuts once per round trip. ``retry_after`` additionally forbids any slot
before ``now + retry_after``.

In-flight cap: :meth:`Limiter.in_flight` is a per-process semaphore (across event loops
and threads of the process), independent of the rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis

from worker.errors import LimiterBusy

__all__ = ["Aimd", "Limiter", "LocalLimiter", "RedisLimiter", "make_limiter"]


class Limiter(Protocol):
    """What the pipeline calls around every vendor request."""

    async def acquire(self, key: str, rate: float, *, max_wait: float) -> float:
        """Reserve the next slot for ``key`` at ``rate`` calls/s and sleep until it.

        Returns the seconds waited. Raises :class:`~worker.errors.LimiterBusy` (key, wait)
        *without reserving* if the slot is more than ``max_wait`` seconds away.
        """
        ...

    async def penalize(self, key: str, *, retry_after: float | None = None) -> None:
        """The vendor throttled us: cut ``key``'s effective rate for every worker (AIMD)."""
        ...

    def in_flight(self, key: str, cap: int | None) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold one of ``cap`` per-process places for calls to ``key`` (None: no limit)."""
        ...

    async def aclose(self) -> None:
        """Release connections. The limiter is unusable afterwards."""
        ...


@dataclass(frozen=True)
class Aimd:
    """How a throttle answer slows a key down and how it recovers (shares of the rate)."""

    decrease: float = 0.5  # multiplicative decrease per throttle event
    floor: float = 0.1  # never below this share of the configured rate
    recover_per_second: float = 0.05  # additive increase: back to full in <= 18 s
    cooldown: float = 1.0  # seconds after a cut during which further throttles are echoes

    def __post_init__(self) -> None:
        if not (0 < self.decrease < 1 and 0 < self.floor <= 1):
            raise ValueError("Aimd needs 0 < decrease < 1 and 0 < floor <= 1")
        if self.recover_per_second <= 0 or self.cooldown < 0:
            raise ValueError("Aimd needs recover_per_second > 0 and cooldown >= 0")

    @property
    def recovery_seconds(self) -> float:
        """Longest time a penalty can last (from the floor back to the full rate)."""
        return (1 - self.floor) / self.recover_per_second


def _check(rate: float, max_wait: float) -> None:
    if not rate > 0 or not math.isfinite(rate):
        raise ValueError(f"rate must be a positive number of calls/s, not {rate!r}")
    if not max_wait >= 0:
        raise ValueError(f"max_wait must be >= 0, not {max_wait!r}")


async def _sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` on :func:`time.monotonic` (the default loop clock)."""
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


# --------------------------------------------------------------------------- in-flight cap


@dataclass(eq=False)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    granted: bool = False  # set under the gate's lock when a place is handed to this waiter


class _Gate:
    """A counting semaphore usable from any event loop in any thread of the process.

    ``asyncio.Semaphore`` is bound to one loop; a per-process cap must not be. A released
    place is handed directly to the oldest waiter (FIFO, no barging), and whoever holds a
    granted place it will not use (a cancelled waiter) gives it back exactly once.
    """

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._used = 0
        self._waiters: deque[_Waiter] = deque()
        self._lock = threading.Lock()

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._used < self._cap and not self._waiters:
                self._used += 1
                return
            waiter = _Waiter(loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            await waiter.future
        except BaseException:
            with self._lock:
                if waiter.granted:
                    self._release_locked()  # handed a place we will not use: pass it on
                else:
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        with self._lock:
            self._release_locked()

    def _release_locked(self) -> None:
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.granted = True  # the place moves to the waiter; _used is unchanged
            waiter.loop.call_soon_threadsafe(_wake, waiter.future)
        else:
            self._used -= 1


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():  # cancelled meanwhile: its owner sees ``granted`` and releases
        future.set_result(None)


class _Caps:
    """Per-process in-flight caps, one gate per (key, cap)."""

    def __init__(self) -> None:
        self._gates: dict[tuple[str, int], _Gate] = {}
        self._lock = threading.Lock()

    def hold(self, key: str, cap: int | None) -> contextlib.AbstractAsyncContextManager[None]:
        if cap is None:
            return contextlib.nullcontext()
        if cap < 1:
            raise ValueError(f"in-flight cap must be >= 1 or None, not {cap!r}")
        with self._lock:
            gate = self._gates.setdefault((key, cap), _Gate(cap))
        return _held(gate)


@contextlib.asynccontextmanager
async def _held(gate: _Gate) -> AsyncIterator[None]:
    await gate.acquire()
    try:
        yield
    finally:
        gate.release()


# --------------------------------------------------------------------------- local


@dataclass
class _State:
    """One key's schedule and penalty; the Lua script keeps the same four fields."""

    last: float = -math.inf  # the latest reserved slot
    factor: float = 1.0  # share of the rate at the last cut
    cut_at: float = -math.inf  # when the factor was last cut
    not_before: float = -math.inf  # a vendor's Retry-After: no slot before this


@dataclass
class LocalLimiter:
    """In-process limiter (embedded mode): same contract, state in memory.

    Thread-safe: threads with their own event loops may share one instance. State is
    guarded by a lock held only for arithmetic, never across an ``await``.
    """

    margin: float = 0.03
    aimd: Aimd = field(default_factory=Aimd)
    _states: dict[str, _State] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _caps: _Caps = field(default_factory=_Caps, init=False, repr=False)

    def _factor(self, state: _State, now: float) -> float:
        recovered = state.factor + self.aimd.recover_per_second * (now - state.cut_at)
        return min(1.0, recovered)

    async def acquire(self, key: str, rate: float, *, max_wait: float) -> float:
        _check(rate, max_wait)
        with self._lock:
            now = time.monotonic()
            state = self._states.setdefault(key, _State())
            interval = (1 + self.margin) / (rate * self._factor(state, now))
            slot = max(now, state.not_before, state.last + interval)
            wait = slot - now
            if wait > max_wait:
                raise LimiterBusy(key, wait)
            state.last = slot
        await _sleep_until(slot)
        return time.monotonic() - now

    async def penalize(self, key: str, *, retry_after: float | None = None) -> None:
        with self._lock:
            now = time.monotonic()
            state = self._states.setdefault(key, _State())
            if now - state.cut_at >= self.aimd.cooldown:
                factor = self._factor(state, now) * self.aimd.decrease
                state.factor = max(self.aimd.floor, factor)
                state.cut_at = now
            if retry_after is not None and retry_after > 0:
                state.not_before = max(state.not_before, now + retry_after)

    async def factor(self, key: str) -> float:
        """The share of the configured rate ``key`` may use now (1.0: no penalty)."""
        with self._lock:
            state = self._states.get(key)
            return 1.0 if state is None else self._factor(state, time.monotonic())

    def in_flight(self, key: str, cap: int | None) -> contextlib.AbstractAsyncContextManager[None]:
        return self._caps.hold(key, cap)

    async def aclose(self) -> None:
        """Nothing to release."""


# --------------------------------------------------------------------------- Redis

# One script, three operations, all on one hash per key (so it is cluster-safe too).
# Times are integer microseconds of Redis's clock, written with %.0f because Lua's default
# number formatting keeps only 14 significant digits. Fields: last (latest reserved slot),
# f / ft (factor at the last cut, and when), nb (not before: a vendor's Retry-After).
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local s = redis.call('HMGET', KEYS[1], 'last', 'f', 'ft', 'nb')
local last, f, ft, nb = tonumber(s[1]), tonumber(s[2]) or 1, tonumber(s[3]), tonumber(s[4])
local op, recover, ttl_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local factor = 1
if ft then factor = math.min(1, f + recover * (now - ft) / 1000000) end
local function keep(until_us)
  local ms = math.max(0, math.ceil((until_us - now) / 1000)) + ttl_ms
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', ms))
end
if op == 'acquire' then
  local rate, margin, max_wait = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  local slot = now
  if nb and nb > slot then slot = nb end
  if last then
    local next_slot = last + math.ceil((1 + margin) * 1000000 / (rate * factor))
    if next_slot > slot then slot = next_slot end
  end
  local wait = slot - now
  if wait > max_wait then return {0, wait} end
  redis.call('HSET', KEYS[1], 'last', string.format('%.0f', slot))
  keep(math.max(slot, nb or 0))
  return {1, wait}
elseif op == 'penalize' then
  local decrease, floor, cooldown, retry_after =
    tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
  if not ft or now - ft >= cooldown then
    factor = math.max(floor, factor * decrease)
    redis.call('HSET', KEYS[1], 'f', string.format('%.17g', factor),
               'ft', string.format('%.0f', now))
  end
  if retry_after > 0 and (not nb or now + retry_after > nb) then
    nb = now + retry_after
    redis.call('HSET', KEYS[1], 'nb', string.format('%.0f', nb))
  end
  keep(math.max(last or 0, nb or 0))
  return math.floor(factor * 1000000)
else
  return math.floor(factor * 1000000)
end
"""


class RedisLimiter:
    """The limiter shared by every process on every machine, through one Redis.

    Use it from one event loop (redis-py's asyncio client is loop-bound); any number of
    coroutines may call it concurrently. Redis errors propagate unchanged.
    """

    def __init__(
        self,
        url: str,
        *,
        margin: float = 0.03,
        aimd: Aimd | None = None,
        prefix: str = "vrec:ratelimit:",
    ) -> None:
        self.margin = margin
        self.aimd = aimd or Aimd()
        self.prefix = prefix
        self._redis: aioredis.Redis = aioredis.Redis.from_url(url)
        # redis-py sends EVALSHA and loads the script once per server on NOSCRIPT.
        self._script = self._redis.register_script(_SCRIPT)
        # Penalty state must outlive its recovery, whoever is idle meanwhile.
        self._ttl_ms = math.ceil(self.aimd.recovery_seconds * 1000) + 60_000
        self._caps = _Caps()

    async def _call(self, key: str, *args: Any) -> Any:
        return await self._script(
            keys=[self.prefix + key],
            args=[args[0], repr(self.aimd.recover_per_second), self._ttl_ms, *args[1:]],
        )

    async def acquire(self, key: str, rate: float, *, max_wait: float) -> float:
        _check(rate, max_wait)
        sent = time.monotonic()
        reserved, wait_us = await self._call(
            key, "acquire", repr(float(rate)), repr(self.margin), math.floor(max_wait * 1e6)
        )
        received = time.monotonic()
        wait = int(wait_us) / 1e6
        if not reserved:
            raise LimiterBusy(key, wait)
        # Count the wait from the reply, not the request: what precedes the script (a new
        # connection, the pool, NOSCRIPT and a load) can take far longer than what follows
        # it, and waking late by one reply's transit keeps the error one-sided and small.
        await _sleep_until(received + wait)
        return time.monotonic() - sent

    async def penalize(self, key: str, *, retry_after: float | None = None) -> None:
        retry_us = math.ceil(retry_after * 1e6) if retry_after and retry_after > 0 else 0
        await self._call(
            key,
            "penalize",
            repr(self.aimd.decrease),
            repr(self.aimd.floor),
            math.ceil(self.aimd.cooldown * 1e6),
            retry_us,
        )

    async def factor(self, key: str) -> float:
        """The share of the configured rate ``key`` may use now (1.0: no penalty)."""
        return int(await self._call(key, "factor")) / 1e6

    def in_flight(self, key: str, cap: int | None) -> contextlib.AbstractAsyncContextManager[None]:
        return self._caps.hold(key, cap)

    async def aclose(self) -> None:
        await self._redis.aclose()


def make_limiter(redis_url: str | None, *, margin: float) -> Limiter:
    """A shared :class:`RedisLimiter` if a Redis URL is configured, else a :class:`LocalLimiter`."""
    if redis_url:
        return RedisLimiter(redis_url, margin=margin)
    return LocalLimiter(margin=margin)
