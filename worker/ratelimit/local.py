"""The in-process limiter of embedded mode: the shared limiter's contract, state in memory."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass, field
from functools import partial

from worker.errors import LimiterBusy
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


@dataclass
class _State:
    """One key's schedule and penalty; the Lua script of :mod:`.shared` keeps the same."""

    generation: str  # the schedule's name: a cut begins a new one
    last: float  # the latest reserved slot
    factor: float = 1.0  # share of the rate right after the last cut
    ceiling: float = 1.0  # share of the rate the last cut was made at
    cut_at: float | None = None  # when the last cut was made (None: never)
    started: float = -math.inf  # when the schedule a cut began took effect
    not_before: float = -math.inf  # a vendor's Retry-After: no slot before this


@dataclass
class LocalLimiter:
    """In-process limiter (embedded mode): same contract, state in memory.

    Thread-safe: threads with their own event loops may share one instance. State is
    guarded by a lock held only for arithmetic, never across an ``await``. Its clock is
    :func:`time.monotonic`. It cannot lose its state, but keeps the protocol of one that
    can: a new key's schedule starts ``lead`` after it is first asked for, and far slots
    are confirmed (a cut replaces the schedule, as a loss would).
    """

    margin: float = 0.03
    aimd: Aimd = field(default_factory=Aimd)
    lead: float = LEAD_SECONDS
    _states: dict[str, _State] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _caps: Caps = field(default_factory=Caps, init=False, repr=False)

    def _factor(self, state: _State, now: float) -> float:
        if state.cut_at is None:
            return 1.0
        return self.aimd.climb(state.factor, state.ceiling, now - state.cut_at)

    def _state(self, key: str, now: float) -> _State:
        state = self._states.get(key)
        if state is None:  # a new schedule: its first slot at least `lead` from now
            state = self._states[key] = _State(new_generation(), now + self.lead)
        return state

    async def acquire(
        self, key: str, rate: float, *, max_wait: float, at_slot: AtSlot | None = None
    ) -> Slot:
        check_args(rate, max_wait)
        return await take_slot(
            partial(self._reserve, key, rate),
            partial(self._confirm, key),
            lambda reservation: time.monotonic() - reservation.wake,
            max_wait=max_wait,
            margin=self.margin,
            lead=self.lead,
            at_slot=at_slot,
        )

    async def _reserve(self, key: str, rate: float, budget: float) -> Reservation:
        """The next slot for ``key``, reserved; LimiterBusy (nothing reserved) past ``budget``."""
        with self._lock:
            now = time.monotonic()
            state = self._state(key, now)
            interval = (1 + self.margin) / (rate * self._factor(state, now))
            slot = max(now, state.not_before, state.last + interval)
            wait = slot - now
            if wait > budget:
                raise LimiterBusy(key, wait)
            state.last = slot
            return Reservation(state.generation, slot, wait, slot)

    async def _confirm(self, key: str, reservation: Reservation) -> bool:
        with self._lock:
            state = self._states.get(key)
            return state is not None and state.generation == reservation.generation

    async def penalize(self, key: str, slot: Slot, *, retry_after: float | None = None) -> bool:
        with self._lock:
            now = time.monotonic()
            state = self._state(key, now)
            cut = slot.generation == state.generation and slot.at >= (
                state.started + self.aimd.cooldown
            )
            if cut:
                ceiling = self._factor(state, now)
                last_ceiling = None if state.cut_at is None else state.ceiling
                state.factor = self.aimd.cut(ceiling, last_ceiling)
                state.ceiling, state.cut_at = ceiling, now
                # A new schedule from `lead` on: slots beyond it will fail their confirmation.
                state.generation, state.started = new_generation(), now + self.lead
                state.last = min(state.last, state.started)
            if retry_after is not None and retry_after > 0:
                state.not_before = max(state.not_before, now + retry_after)
            return cut

    async def factor(self, key: str) -> float:
        """The share of the configured rate ``key`` may use now (1.0: no penalty)."""
        with self._lock:
            state = self._states.get(key)
            return 1.0 if state is None else self._factor(state, time.monotonic())

    def in_flight(self, key: str, cap: int | None) -> contextlib.AbstractAsyncContextManager[None]:
        return self._caps.hold(key, cap)

    async def aclose(self) -> None:
        """Nothing to release."""
