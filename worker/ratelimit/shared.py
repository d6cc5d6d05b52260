"""The limiter shared by all processes on all machines: one Lua script on Redis."""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from worker.errors import LimiterBusy, LimiterUnavailable
from worker.ratelimit.base import Aimd, budget_left, check_args, late, sleep_until
from worker.ratelimit.caps import Caps

# One script, three operations, all on one hash per key (so it is cluster-safe too).
# Times are integer microseconds of Redis's clock, written with %.0f because Lua's default
# number formatting keeps only 14 significant digits. Fields: last (latest reserved slot),
# f / ft (factor at the last cut, and when), nb (not before: a vendor's Retry-After).
# 'acquire' answers {reserved, wait, now}: the script's own TIME lets a caller tell how
# long the reply took to reach it (see RedisLimiter.acquire).
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
  if wait > max_wait then return {0, wait, now} end
  redis.call('HSET', KEYS[1], 'last', string.format('%.0f', slot))
  keep(math.max(slot, nb or 0))
  return {1, wait, now}
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

# One process keeps hundreds of acquires outstanding (task threads x jobs per message) and
# redis-py needs a connection per outstanding command: its default asyncio pool fails the
# 101st with MaxConnectionsError, so callers queue for one of a blocking pool's instead
# (time before the script runs is not lateness, see RedisLimiter.acquire).
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
        prefix: str = "vrec:ratelimit:",
    ) -> None:
        self.margin = margin
        self.aimd = aimd or Aimd()
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

    async def _call(self, key: str, op: str, *args: Any) -> Any:
        """Run the script's ``op`` on ``key``: ARGV is op, recovery, TTL, then ``args``."""
        try:
            return await self._script(
                keys=[self.prefix + key],
                args=[op, repr(self.aimd.recover_per_second), self._ttl_ms, *args],
            )
        except (RedisError, OSError) as exc:
            raise LimiterUnavailable(key, type(exc).__name__) from exc

    async def acquire(self, key: str, rate: float, *, max_wait: float) -> float:
        check_args(rate, max_wait)
        start = time.monotonic()
        deadline = start + max_wait
        while True:
            sent_wall = time.time()
            reserved, wait_us, script_us = await self._call(
                key,
                "acquire",
                repr(float(rate)),
                repr(self.margin),
                math.floor(budget_left(deadline, time.monotonic()) * 1e6),
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
            await sleep_until(received + wait)
            # Late = the sleep's overrun plus the reply's transit (it may have sat unread on
            # a blocked loop, making `received` late). The transit is bounded above, offset
            # cancelled, by `(received - script)` less the largest recent `(sent - script)`:
            # it over-counts by the fastest request's transit, never under-counts.
            lateness = time.monotonic() - (received + wait)
            lateness += (received_wall - script) - self._offset.value
            if not late(lateness, self.margin):
                return time.monotonic() - start

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
