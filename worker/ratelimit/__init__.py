"""Vendor quotas held by every worker together: one limiter per provider credential.

Celery's own ``rate_limit`` is per worker instance (two instances send twice the quota)
and degrades badly on Redis, so vrec paces each vendor call itself, right before the HTTP
request. :class:`RedisLimiter` shares its state through one Lua script on Redis, using
Redis's own clock (``TIME``), so all processes on all machines draw from one schedule;
:class:`LocalLimiter` is the embedded-mode twin with the same contract, in-process.
:func:`make_limiter` picks one.

Layout: :mod:`.base` (the protocol, AIMD parameters, the acquire loop both limiters run),
:mod:`.local`, :mod:`.shared` (Redis and its Lua script), :mod:`.caps` (the in-flight cap
both use).
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

What a caller must do between its slot and its request goes before the check: the
pipeline's attempt row (:class:`~worker.ratelimit.base.AtSlot`) is committed as the slot
comes due, so a slow commit makes the call late and forfeits the slot; committed after
the check, the commit's time would delay the request past its slot, unchecked. The row of
a forfeited slot is withdrawn before the caller reserves again, so a worker killed while
it waits leaves no row for a call never made.

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

Generations: the limit survives losing the state
------------------------------------------------
The state lives in Redis, and a flush, a failover to an empty replica or an eviction
loses it while callers sleep toward slots reserved in it (up to ``max_wait`` ahead). An
empty key must not start a second schedule beside theirs (that put 25 calls in one second
against 15/s). So every schedule has a *generation*, a random name stored with it and
returned with each slot (:class:`Slot`), and two rules hold, in both limiters:

1. *A far slot is confirmed.* A slot more than ``lead`` (0.1 s) after its reservation is
   confirmed ``lead`` before it: one more round trip checks that the key still holds the
   slot's generation. If it does not (the state was lost, or a cut replaced the
   schedule, below), the caller does not send: it reserves again, within the same
   ``max_wait`` budget. A slot at most ``lead`` away is sent without confirmation.
2. *A new schedule starts late.* A state that is created (a new key, or a lost one)
   begins as if a slot had been reserved ``lead`` from now: its first slot is ``lead + T``
   away (``LimiterBusy`` for a shorter ``max_wait``).

Why that holds the limit: a slot still sent after the state was lost at time ``F`` was
reserved before ``F`` at most ``lead`` ahead, or confirmed before ``F`` at most ``lead``
ahead; either way it lies before ``F + lead``. The new schedule, created at ``F' >= F``,
has no slot before ``F' + lead + T``. The old slots still sent and the new ones form one
sequence whose gaps are all at least ``T``, and the bound above (``N + 1`` consecutive
slots span at least ``1 + margin`` seconds) holds across the loss. Clocks: a slot is on
Redis's clock and its holder wakes to confirm ``lead`` before ``reply + wait`` on its
own, never earlier on Redis's clock than ``slot - lead``; a replica with another clock has
another generation too. A confirmation that comes back after the slot makes the caller
late (re-reserved as above), and one that fails (Redis down) sends nothing.

Cost: no round trip on the unsaturated path (a slot at most ``lead`` away needs no
confirmation, so the instant-vendor path makes one round trip per call, as before); a
saturated key, where the rate is the bottleneck anyway, costs two per call; a new key's
first call waits ``lead + T`` once. Not covered: a state restored *older* than it was (a
crash restart from an RDB/AOF snapshot, a failover to a replica that lagged) keeps its
generation, and new slots may undercut ones reserved in the writes it lost. Lost with the
state: the penalty below (a throttle learns it again) and a Retry-After.

Penalty (AIMD): one cut per throttling episode
----------------------------------------------
A throttling answer (:meth:`Limiter.penalize`, given the throttled call's :class:`Slot`)
is the vendor saying our rate is above its limit, which is the normal case: four of the
five vendors publish none. A cut

* multiplies the key's *factor* (the share of the configured rate in use) by
  ``Aimd.decrease`` (0.7, never below ``Aimd.floor``) and remembers the factor it was made
  at, the *ceiling*;
* begins a new generation, effective ``lead`` from now (the schedule's end is pulled back
  to ``now + lead``): every slot beyond that, reserved at the old spacing, fails its
  confirmation and is reserved again at the new spacing. Without this, callers holding
  up to ``max_wait`` of slots at the old spacing kept being throttled after the cut;
* is made once per episode: a throttle of a call whose slot belongs to an older
  generation (reserved before the cut) is an echo, and so is one of a call sent within
  ``Aimd.cooldown`` (1 s) of the new schedule's start, while the vendor's window still
  counts calls of the old one. :meth:`Limiter.penalize` returns whether it cut.

The climb back is additive, toward the configured rate: ``Aimd.recover_per_second`` (0.05
of the rate per second) up to ``Aimd.probe_band`` (5%) below the ceiling, then slowly
(``Aimd.probe_seconds``, 20 s, per band) through the bands below and above it, then fast
again. A throttle within the band of the last ceiling confirms where the vendor's limit
is and cuts only to ``1 - 2 * probe_band`` (0.9) of it. So a key settles just below the
vendor's real limit, probing it every 20 s or so with one throttled call or two and a
short 10% dip, instead of halving down to the floor (at 15/s configured against 12/s
real, that ran at 52% of the vendor's limit). A vendor that raised its limit is found
again past the band. The state lives next to the schedule (in Redis, with a TTL covering
the recovery), so every worker slows down at once. ``retry_after`` additionally forbids
any slot before ``now + retry_after`` (it does not re-space slots already reserved).

In-flight cap: :meth:`Limiter.in_flight` is a per-process semaphore (across event loops
and threads of the process), independent of the rate.

What survives what
------------------
* A worker killed or restarted: everything (the state is in Redis); its slots go unused.
* Redis flushed, failed over to an empty replica, keys evicted: the limit, by the rules
  above. Lost: the penalty and Retry-After (relearned from the next throttle); the first
  slot afterwards is ``lead + T`` away.
* Redis unreachable: the limit, since nothing is sent (``LimiterUnavailable``: the job is
  given back), not even in a slot whose confirmation fails.
* Redis restored to an *older* state (crash restart from a snapshot, a lagging replica):
  not guaranteed for the slots reserved in the lost writes (up to ``max_wait`` after).
* In embedded mode (:class:`LocalLimiter`) the state lives and dies with the process.
"""

from __future__ import annotations

from worker.ratelimit.base import Aimd, AtSlot, Limiter, Slot
from worker.ratelimit.local import LocalLimiter
from worker.ratelimit.shared import RedisLimiter

__all__ = ["Aimd", "AtSlot", "Limiter", "LocalLimiter", "RedisLimiter", "Slot", "make_limiter"]


def make_limiter(redis_url: str | None, *, margin: float) -> Limiter:
    """A shared :class:`RedisLimiter` if a Redis URL is configured, else a :class:`LocalLimiter`."""
    if redis_url:
        return RedisLimiter(redis_url, margin=margin)
    return LocalLimiter(margin=margin)
