"""Vendor quotas held by every worker together: one limiter per provider credential.

Celery's own ``rate_limit`` is per worker instance (two instances send twice the quota)
and degrades badly on Redis, so vrec paces each vendor call itself, right before the HTTP
request. :class:`RedisLimiter` shares its state through one Lua script on Redis, using
Redis's own clock (``TIME``), so all processes on all machines draw from one schedule;
:class:`LocalLimiter` is the embedded-mode twin with the same contract, in-process.
:func:`make_limiter` picks one.

Layout: :mod:`.base` (the protocol, AIMD parameters), :mod:`.local`, :mod:`.shared`
(Redis and its Lua script), :mod:`.caps` (the in-flight cap both use).
Keys are ``f"{provider}:{credential_id}"``.

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

from worker.ratelimit.base import Aimd, Limiter
from worker.ratelimit.local import LocalLimiter
from worker.ratelimit.shared import RedisLimiter

__all__ = ["Aimd", "Limiter", "LocalLimiter", "RedisLimiter", "make_limiter"]


def make_limiter(redis_url: str | None, *, margin: float) -> Limiter:
    """A shared :class:`RedisLimiter` if a Redis URL is configured, else a :class:`LocalLimiter`."""
    if redis_url:
        return RedisLimiter(redis_url, margin=margin)
    return LocalLimiter(margin=margin)
