"""The limiter protocol, the AIMD parameters and the acquire loop both implementations share."""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

# How long before its slot a caller confirms that its schedule still exists, and how far
# after a new schedule begins its first slot may lie (see the package docstring).
LEAD_SECONDS = 0.1


@dataclass(frozen=True)
class Slot:
    """A slot :meth:`Limiter.acquire` granted: what :meth:`Limiter.penalize` needs to tell
    a new throttling episode from an echo of the last one."""

    waited: float  # seconds acquire took in all
    generation: str  # the schedule the slot belongs to
    at: float  # the slot, in seconds on the limiter's clock (Redis TIME, or monotonic)


@dataclass(frozen=True)
class AtSlot:
    """What a caller does as its slot comes due, and how that is undone (the pipeline:
    the call's attempt row, written, then withdrawn).

    ``due`` is awaited when a reserved slot comes due (after its confirmation, if the
    caller did not wake late) and before the last lateness check, so its time counts as
    lateness: a slow ``due`` makes the caller forfeit the slot rather than send late into a
    crowded second. The caller then reserves again; if that slot is more than ``margin``
    away, ``undo`` is awaited before the wait and the slot runs ``due`` anew, else the
    ``due`` stands for it (at a high rate the next slot is at hand: a slow write costs a
    reservation, not a withdrawal and a new write). So nothing of ``due`` stands while a
    caller waits longer than ``margin``: when ``acquire`` returns, exactly one ``due``
    stands; when it raises (LimiterBusy, LimiterUnavailable), none does. A ``due`` that
    raises must leave nothing standing; its exception propagates and the slot goes unused.
    An ``undo`` that raises leaves its ``due`` standing; its exception propagates. A
    caller cancelled inside either may leave that ``due`` standing.
    """

    due: Callable[[], Awaitable[None]]
    undo: Callable[[], Awaitable[None]]


class Limiter(Protocol):
    """What the pipeline calls around every vendor request."""

    async def acquire(
        self, key: str, rate: float, *, max_wait: float, at_slot: AtSlot | None = None
    ) -> Slot:
        """Reserve the next slot for ``key`` at ``rate`` calls/s and sleep until it.

        A slot more than ``lead`` seconds away is confirmed ``lead`` seconds before it: if
        its schedule is gone (state lost, or replaced by a cut), the caller reserves again.
        ``at_slot.due`` (writing the call down) then runs, and a caller more than
        ``margin / 2`` seconds past its slot after it (woken late, or held up by ``due``)
        forfeits the slot and reserves again, undoing ``due`` unless the next slot is at
        hand (see :func:`late` and :class:`AtSlot`). Raises
        :class:`~worker.errors.LimiterBusy` (key, wait) *without reserving* if the next
        slot is more than ``max_wait`` seconds after the call began (a total budget for
        every attempt).
        """
        ...

    async def penalize(self, key: str, slot: Slot, *, retry_after: float | None = None) -> bool:
        """The vendor throttled the call sent in ``slot``: cut ``key``'s rate for every
        worker, once per episode. Returns whether this throttle cut (False: an echo)."""
        ...

    def in_flight(self, key: str, cap: int | None) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold one of ``cap`` per-process places for calls to ``key`` (None: no limit)."""
        ...

    async def aclose(self) -> None:
        """Release connections. The limiter is unusable afterwards."""
        ...

    async def factor(self, key: str) -> float:
        """The share of the configured rate ``key`` may use now (1.0: no penalty)."""
        ...


@dataclass(frozen=True)
class Aimd:
    """How a throttle answer slows a key down and how it climbs back (shares of the rate).

    A cut remembers the share it was made at (the *ceiling*, where the vendor refused) and
    leaves ``decrease`` of it; a throttle within ``probe_band`` of the last ceiling confirms
    where the vendor's limit is and cuts only to ``1 - 2 * probe_band`` of it. The climb
    back is additive: ``recover_per_second`` up to ``probe_band`` below the ceiling, then
    slowly, ``probe_seconds`` per band, through the band below and above it, then at
    ``recover_per_second`` again up to the configured rate.
    """

    decrease: float = 0.7  # a cut leaves this share of the factor at the throttle...
    floor: float = 0.1  # never below this share of the configured rate
    recover_per_second: float = 0.05  # additive increase away from the ceiling
    probe_band: float = 0.05  # ...near the last ceiling 1 - 2 x this; climbed slowly
    probe_seconds: float = 20.0  # seconds to climb one band
    cooldown: float = 1.0  # after a cut, throttles of calls this close to its start are echoes

    def __post_init__(self) -> None:
        if not (0 < self.decrease < 1 and 0 < self.floor <= 1):
            raise ValueError("Aimd needs 0 < decrease < 1 and 0 < floor <= 1")
        if not (0 <= self.probe_band < 1) or self.probe_seconds <= 0:
            raise ValueError("Aimd needs 0 <= probe_band < 1 and probe_seconds > 0")
        if self.recover_per_second <= 0 or self.cooldown < 0:
            raise ValueError("Aimd needs recover_per_second > 0 and cooldown >= 0")

    @property
    def recovery_seconds(self) -> float:
        """Longest time a penalty can last (from the floor back to the full rate)."""
        return (1 - self.floor) / self.recover_per_second + 2 * self.probe_seconds

    def cut(self, factor: float, ceiling: float | None) -> float:
        """The factor after a throttle at ``factor``, the last cut's made at ``ceiling``
        (None: no cut yet). The Lua script of :mod:`.shared` computes the same."""
        band = self.probe_band
        near = ceiling is not None and ceiling * (1 - band) <= factor <= ceiling * (1 + band)
        share = max(self.decrease, 1 - 2 * band) if near else self.decrease
        return max(self.floor, factor * share)

    def climb(self, start: float, ceiling: float, elapsed: float) -> float:
        """The factor ``elapsed`` seconds after a cut to ``start`` from ``ceiling``.

        The Lua script of :mod:`.shared` computes the same.
        """
        fast, slow = self.recover_per_second, ceiling * self.probe_band / self.probe_seconds
        knee, top = ceiling * (1 - self.probe_band), ceiling * (1 + self.probe_band)
        factor, left = start, max(0.0, elapsed)
        for end, speed in ((knee, fast), (top, slow)):
            if factor < end and left > 0 and speed > 0:
                used = min(left, (end - factor) / speed)
                factor, left = factor + speed * used, left - used
        return min(1.0, factor + fast * left)


def check_args(rate: float, max_wait: float) -> None:
    if not rate > 0 or not math.isfinite(rate):
        raise ValueError(f"rate must be a positive number of calls/s, not {rate!r}")
    if not max_wait >= 0:
        raise ValueError(f"max_wait must be >= 0, not {max_wait!r}")


def late(lateness: float, margin: float) -> bool:
    """Whether a caller woken ``lateness`` seconds after its slot must not send.

    Half the jitter budget (``margin`` seconds) is spent here, the other half is left for
    what follows the check (the send, the network, the vendor's own accept). ``margin`` 0
    has no budget to protect: the check is off (it would refuse every wake-up).
    """
    return margin > 0 and lateness > margin / 2


def budget_left(deadline: float, now: float) -> float:
    """What is left of a ``max_wait`` budget ending at ``deadline``: never negative, so
    ``max_wait=0`` still takes a free slot."""
    return max(0.0, deadline - now)


def new_generation() -> str:
    """A name for a schedule that a new state or a cut may begin (unique, not secret)."""
    return secrets.token_hex(8)


async def sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` on :func:`time.monotonic` (the default loop clock)."""
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


@dataclass(frozen=True)
class Reservation:
    """One reserved slot, as an implementation reports it to :func:`take_slot`."""

    generation: str
    at: float  # the slot on the limiter's clock
    wait: float  # seconds from the reservation to the slot, on the limiter's clock
    wake: float  # the slot on this process's time.monotonic()
    skew: float = 0.0  # RedisLimiter: (wall clock at the reply) - (Redis TIME); see shared


async def take_slot(
    reserve: Callable[[float], Awaitable[Reservation]],
    confirm: Callable[[Reservation], Awaitable[bool]],
    lateness: Callable[[Reservation], float],
    *,
    max_wait: float,
    margin: float,
    lead: float,
    at_slot: AtSlot | None = None,
) -> Slot:
    """The acquire loop of both limiters: reserve (given the budget left), confirm a far
    slot ``lead`` before it, sleep until it, run ``at_slot.due``, and reserve again if the
    schedule is gone or the caller is late (woken late, or after ``due``; a ``due`` is
    undone before a wait longer than ``margin`` and when reserving raises, see
    :class:`AtSlot`). ``reserve`` raises LimiterBusy (nothing reserved) past the budget.
    """
    start = time.monotonic()
    deadline = start + max_wait
    standing = False  # a ``due`` of a forfeited slot, kept while the next one is at hand
    while True:
        try:
            reservation = await reserve(budget_left(deadline, time.monotonic()))
        except BaseException:
            if standing and at_slot is not None:
                await at_slot.undo()
            raise
        if standing and at_slot is not None and reservation.wait > margin:
            await at_slot.undo()  # a real wait ahead: nothing of ``due`` stands during it
            standing = False
        if reservation.wait > lead:
            await sleep_until(reservation.wake - lead)
            if not await confirm(reservation):
                continue  # the schedule was lost or cut: this slot is no longer ours
        await sleep_until(reservation.wake)
        # Late (a blocked event loop, a starved thread, a slow ``due``): sending now could
        # put N + 1 arrivals in one second. Forfeit the slot, take the next free one.
        if late(lateness(reservation), margin):
            continue
        if at_slot is not None and not standing:
            await at_slot.due()
            standing = True
            if late(lateness(reservation), margin):
                continue
        return Slot(time.monotonic() - start, reservation.generation, reservation.at)
