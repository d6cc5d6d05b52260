"""The in-process limiter of embedded mode: the shared limiter's contract, state in memory."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass, field

from worker.errors import LimiterBusy
from worker.ratelimit.base import Aimd, budget_left, check_args, late, sleep_until
from worker.ratelimit.caps import Caps


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
    _caps: Caps = field(default_factory=Caps, init=False, repr=False)

    def _factor(self, state: _State, now: float) -> float:
        recovered = state.factor + self.aimd.recover_per_second * (now - state.cut_at)
        return min(1.0, recovered)

    async def acquire(self, key: str, rate: float, *, max_wait: float) -> float:
        check_args(rate, max_wait)
        start = time.monotonic()
        deadline = start + max_wait
        while True:
            slot = self._reserve(key, rate, deadline)
            await sleep_until(slot)
            # Woken too late (a blocked event loop, a starved thread): sending now could
            # put N + 1 arrivals in one second. Forfeit the slot, take the next free one.
            if not late(time.monotonic() - slot, self.margin):
                return time.monotonic() - start

    def _reserve(self, key: str, rate: float, deadline: float) -> float:
        """The next slot for ``key``, reserved; LimiterBusy (nothing reserved) past ``deadline``."""
        with self._lock:
            now = time.monotonic()
            state = self._states.setdefault(key, _State())
            interval = (1 + self.margin) / (rate * self._factor(state, now))
            slot = max(now, state.not_before, state.last + interval)
            wait = slot - now
            if wait > budget_left(deadline, now):
                raise LimiterBusy(key, wait)
            state.last = slot
            return slot

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
