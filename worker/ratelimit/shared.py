"""The limiter shared by all processes on all machines: one Lua script on Redis."""

from __future__ import annotations

import contextlib
import math
import time
from functools import partial
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from worker.errors import LimiterBusy, LimiterUnavailable
from worker.ratelimit.base import (
    LEAD_SECONDS,
    Aimd,
    AtSlot,
    Reservation,
    Slot,
    check_args,
    new_generation,
    take_slot,
)
from worker.ratelimit.caps import Caps

# One script, four operations, all on one hash per key (so it is cluster-safe too).
# Times are integer microseconds of Redis's clock, written with %.0f because Lua's default
# number formatting keeps only 14 significant digits. Fields (LocalLimiter's _State keeps
# the same): g (the schedule's generation), last (latest reserved slot), f / c / ft (factor
# right after the last cut, the factor it was made at, and when), gs (when the schedule
# that cut began takes effect), nb (not before: a vendor's Retry-After).
# ARGV: op, then for 'confirm' the generation; for the others a generation to begin if
# one begins, lead, TTL (ms), recovery, probe band, probe seconds, then the op's own.
# 'acquire' answers {reserved, wait, now, generation}: the script's own TIME lets a caller
# tell how long the reply took to reach it (see RedisLimiter._reserve).
_SCRIPT = """
local key, op = KEYS[1], ARGV[1]
if op == 'confirm' then
  return redis.call('HGET', key, 'g') == ARGV[2] and 1 or 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local s = redis.call('HMGET', key, 'g', 'last', 'f', 'c', 'ft', 'gs', 'nb')
local g, last, f, c, ft, gs, nb = s[1], tonumber(s[2]), tonumber(s[3]), tonumber(s[4]),
  tonumber(s[5]), tonumber(s[6]), tonumber(s[7])
local lead, ttl_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local recover, band, probe = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local function us(x) return string.format('%.0f', x) end
if not g and op == 'factor' then return 1000000 end
if not g then
  -- A new or lost state: its first slot at least `lead` from now, after every slot the
  -- lost one may still have had confirmed.
  g, last = ARGV[2], now + lead
  redis.call('HSET', key, 'g', g, 'last', us(last))
end
local factor = 1
if ft then
  -- Aimd.climb: fast to the band below the ceiling, slowly through it, fast again above.
  local fast, slow = recover, c * band / probe
  local left = math.max(0, (now - ft) / 1000000)
  factor = f
  for _, seg in ipairs({{c * (1 - band), fast}, {c * (1 + band), slow}}) do
    if factor < seg[1] and left > 0 then
      local used = math.min(left, (seg[1] - factor) / seg[2])
      factor, left = factor + seg[2] * used, left - used
    end
  end
  factor = math.min(1, factor + fast * left)
end
local function keep()
  local ms = math.max(0, math.ceil((math.max(last, nb or 0) - now) / 1000)) + ttl_ms
  redis.call('PEXPIRE', key, us(ms))
end
if op == 'acquire' then
  local rate, margin, max_wait = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
  local slot = math.max(now, last + math.ceil((1 + margin) * 1000000 / (rate * factor)))
  if nb and nb > slot then slot = nb end
  local wait = slot - now
  if wait <= max_wait then
    last = slot
    redis.call('HSET', key, 'last', us(last))
  end
  keep()
  return {wait <= max_wait and 1 or 0, wait, now, g}
elseif op == 'penalize' then
  local of, at = ARGV[8], tonumber(ARGV[9])
  local decrease, floor = tonumber(ARGV[10]), tonumber(ARGV[11])
  local cooldown, retry_after = tonumber(ARGV[12]), tonumber(ARGV[13])
  local cut = of == g and not (gs and at < gs + cooldown)
  if cut then
    -- One cut per episode: a new schedule from `lead` on, so slots reserved at the old
    -- spacing beyond it fail their confirmation and are reserved again.
    -- Aimd.cut: gently if the throttle confirms the last ceiling.
    local share = decrease
    if c and factor >= c * (1 - band) and factor <= c * (1 + band) then
      share = math.max(decrease, 1 - 2 * band)
    end
    c, f, ft = factor, math.max(floor, factor * share), now
    g, gs = ARGV[2], now + lead
    if last > gs then last = gs end
    redis.call('HSET', key, 'f', string.format('%.17g', f), 'c', string.format('%.17g', c),
               'ft', us(ft), 'g', g, 'gs', us(gs), 'last', us(last))
  end
  if retry_after > 0 and (not nb or now + retry_after > nb) then
    nb = now + retry_after
    redis.call('HSET', key, 'nb', us(nb))
  end
  keep()
  return cut and 1 or 0
else
  return math.floor(factor * 1000000)
end
"""

# One process keeps hundreds of acquires outstanding (task threads x jobs per message) and
# redis-py needs a connection per outstanding command: its default asyncio pool fails the
# 101st with MaxConnectionsError, so callers queue for one of a blocking pool's instead
# (time before the script runs is not lateness, see RedisLimiter._reserve).
POOL_CONNECTIONS = 32
POOL_TIMEOUT_SECONDS = 10.0  # then ConnectionError: the caller treats the limiter as down


class OffsetBound:
    """A lower bound on (our wall clock) - (Redis's clock), from recent requests only.

    A request gives ``(wall clock at sending) - (TIME in the script)``, never more than the
    offset, as no request arrives before it is sent; the largest is the tightest bound. Only
    samples of the last one or two ``bucket`` seconds count, so the bound follows a clock
    that drifts or steps back: a stale, larger sample would make replies' transits look
    shorter than they were, and late callers look on time.
    """

    def __init__(self, bucket: float = 10.0) -> None:
        self.bucket = bucket
        self._started = -math.inf  # monotonic start of the current bucket
        self._current = -math.inf
        self._previous = -math.inf

    def add(self, sample: float, now: float) -> None:
        if now - self._started >= self.bucket:
            adjacent = now - self._started < 2 * self.bucket
            self._previous = self._current if adjacent else -math.inf
            self._current, self._started = -math.inf, now
        self._current = max(self._current, sample)

    @property
    def value(self) -> float:
        return max(self._current, self._previous)


class RedisLimiter:
    """The limiter shared by every process on every machine, through one Redis.

    Use it from one event loop (redis-py's asyncio client is loop-bound); any number of
    coroutines may call it concurrently. Redis's and the socket's errors are translated
    here, and only here, into :class:`~worker.errors.LimiterUnavailable`.
    """

    def __init__(
        self,
        url: str,
        *,
        margin: float = 0.03,
        aimd: Aimd | None = None,
        lead: float = LEAD_SECONDS,
        prefix: str = "vrec:ratelimit:",
    ) -> None:
        self.margin = margin
        self.aimd = aimd or Aimd()
        self.lead = lead
        self.prefix = prefix
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_CONNECTIONS, timeout=POOL_TIMEOUT_SECONDS
        )
        self._redis: aioredis.Redis = aioredis.Redis.from_pool(pool)  # closes the pool too
        # redis-py sends EVALSHA and loads the script once per server on NOSCRIPT.
        self._script = self._redis.register_script(_SCRIPT)
        # Penalty state must outlive its recovery, whoever is idle meanwhile.
        self._ttl_ms = math.ceil(self.aimd.recovery_seconds * 1000) + 60_000
        self._caps = Caps()
        self._offset = OffsetBound()

    async def _call(self, key: str, *argv: Any) -> Any:
        """Run the script on ``key`` with ``argv``; the only place Redis errors surface."""
        try:
            return await self._script(keys=[self.prefix + key], args=list(argv))
        except (RedisError, OSError) as exc:
            raise LimiterUnavailable(key, type(exc).__name__) from exc

    async def _op(self, key: str, op: str, *args: Any) -> Any:
        """``op`` with the arguments every state-changing operation passes first."""
        aimd = self.aimd
        return await self._call(
            key,
            op,
            new_generation(),  # used only if this call begins a schedule
            math.ceil(self.lead * 1e6),
            self._ttl_ms,
            repr(aimd.recover_per_second),
            repr(aimd.probe_band),
            repr(aimd.probe_seconds),
            *args,
        )

    async def acquire(
        self, key: str, rate: float, *, max_wait: float, at_slot: AtSlot | None = None
    ) -> Slot:
        check_args(rate, max_wait)
        return await take_slot(
            partial(self._reserve, key, rate),
            partial(self._confirm, key),
            self._lateness,
            max_wait=max_wait,
            margin=self.margin,
            lead=self.lead,
            at_slot=at_slot,
        )

    async def _reserve(self, key: str, rate: float, budget: float) -> Reservation:
        sent_wall = time.time()
        reserved, wait_us, script_us, generation = await self._op(
            key, "acquire", repr(float(rate)), repr(self.margin), math.floor(budget * 1e6)
        )
        received, received_wall = time.monotonic(), time.time()
        wait = int(wait_us) / 1e6
        if not reserved:
            raise LimiterBusy(key, wait)
        script = int(script_us) / 1e6  # Redis's clock; ours differs by an unknown offset
        self._offset.add(sent_wall - script, received)
        # Count the wait from the reply, not the request: what precedes the script (a
        # new connection, the pool, NOSCRIPT and a load) can take far longer than what
        # follows it, and waking late by one reply's transit keeps the error one-sided.
        return Reservation(
            generation.decode(), script + wait, wait, received + wait, received_wall - script
        )

    async def _confirm(self, key: str, reservation: Reservation) -> bool:
        return bool(await self._call(key, "confirm", reservation.generation))

    def _lateness(self, reservation: Reservation) -> float:
        """The sleep's overrun plus the reply's transit (it may have sat unread on a blocked
        loop, making the wake-up late). The transit is bounded above, offset cancelled, by
        ``(received - script)`` less the largest recent ``(sent - script)``: it over-counts
        by the fastest request's transit, never under-counts."""
        overrun = time.monotonic() - reservation.wake
        return overrun + reservation.skew - self._offset.value

    async def penalize(self, key: str, slot: Slot, *, retry_after: float | None = None) -> bool:
        retry_us = math.ceil(retry_after * 1e6) if retry_after and retry_after > 0 else 0
        cut = await self._op(
            key,
            "penalize",
            slot.generation,
            math.floor(slot.at * 1e6),
            repr(self.aimd.decrease),
            repr(self.aimd.floor),
            math.ceil(self.aimd.cooldown * 1e6),
            retry_us,
        )
        return bool(cut)

    async def factor(self, key: str) -> float:
        """The share of the configured rate ``key`` may use now (1.0: no penalty)."""
        return int(await self._op(key, "factor")) / 1e6

    def in_flight(self, key: str, cap: int | None) -> contextlib.AbstractAsyncContextManager[None]:
        return self._caps.hold(key, cap)

    async def aclose(self) -> None:
        await self._redis.aclose()
