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

Late callers re-reserve
-----------------------
The schedule only bounds *slots*; a caller sends when it wakes. If call ``i`` goes out
``d`` seconds after its slot while call ``i + N`` goes out on time, the two are
``(1 + margin) - d`` apart, and for ``d > margin`` the ``N + 1`` calls ``i .. i + N``
arrive within one second: the vendor throttles the last. It is the *lateness of call i*
that crowds a window, and it is common under load: a blocked event loop, a thread starved
of the GIL, a process starved of a core (128 task threads claiming jobs on 2 cores at
start-up delayed wake-ups by 50 ms). So a caller that wakes more than ``margin / 2``
seconds after its slot does not send: it forfeits the slot and reserves again (a new slot
at the back of the schedule, the same ``acquire``), until it wakes on time or its
``max_wait`` budget, counted from the first attempt, is spent (then
:class:`~worker.errors.LimiterBusy`, the last attempt reserving nothing). Every call that
is sent was at most ``margin / 2`` late at the check, so calls ``i`` and ``i + N`` are at
least ``1 + margin / 2`` seconds apart there, and the other half of the budget is left for
what follows the check (the request's way to the vendor). A forfeited slot is lost, which
costs throughput only while the machine is overloaded, never the limit.

What "late" is measured against: :class:`LocalLimiter` knows its slot on the caller's
clock exactly. :class:`RedisLimiter` learns the wait on Redis's clock when the script
runs and sleeps until ``reply + wait`` (never early). Its lateness is the sleep's overrun
plus the reply's transit from the script to the caller, since a reply that sat unread on a
blocked loop makes ``reply`` itself late. The script returns its ``TIME``; the transit is
``(wall clock at reply) - TIME`` less the clocks' offset, which is bounded by the largest
``(wall clock at sending) - TIME`` seen in the last 10-20 s (no request arrives before it
is sent; older samples are dropped so that a clock drifting or stepping back is followed).
So the estimate over-counts by the fastest recent request's transit (microseconds on
loopback) and never under-counts, even at start-up when every round trip is slow. Time
spent *before* the script (the pool, a new connection, a busy loop sending the request)
is not lateness: the slot is reserved when the script runs. (A first version charged the
whole round trip instead, and forfeited every slot of the first 13 s of a 4-process
start-up, where round trips took 100-300 ms; one that trusted the smallest recent reply
transit was fooled at start-up, when every reply is slow.) Consequence: a Redis whose
round trip exceeds ``margin / 2`` (15 ms by default) makes every caller late; raise the
margin for such a deployment (the jitter budget must cover that transit's variation
anyway).
``margin`` 0 has no budget and no check.

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
later callers back (``max_wait`` is one budget for all of a call's attempts). A caller
cancelled while sleeping until its slot forfeits the slot
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
