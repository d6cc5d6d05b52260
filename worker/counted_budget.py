"""A FIFO counting budget shared by a process's threads: what the request budget (bytes of
prepared requests, :mod:`worker.request_budget`) and the decode budget (pixels being
decoded, :mod:`worker.imaging.budget`) both are.

A claim waits until it fits and never fails: one larger than the whole budget is granted
once nothing else is held, alone. Claims are served in arrival order, so a large claim is
not overtaken forever by a stream of small ones. :meth:`CountedBudget.try_claim` is for a
thread that already holds room and must not wait for more (two such threads could wait on
each other).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import ClassVar


class Hold:
    """Room held in a :class:`CountedBudget`; release it exactly once (later calls do
    nothing), or use it as a context manager, which releases it on the way out."""

    def __init__(self, budget: CountedBudget, size: int) -> None:
        self._budget = budget
        self.size = size
        self._released = False

    def resize(self, size: int) -> None:
        """Hold ``size`` instead: less gives room back at once; more is taken without
        waiting (the claim was meant to be the upper bound)."""
        self._budget._change(self, size)

    def release(self) -> None:
        self._budget._change(self, 0, release=True)

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


class CountedBudget:
    """A FIFO counting budget of ``limit`` units; thread-safe. ``peak_in_use`` and
    ``peak_holders`` are what tests and benchmarks observe."""

    unit: ClassVar[str] = "unit"

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a {type(self).__name__} needs at least one {self.unit}, not {limit}")
        self.limit = limit
        self._in_use = 0
        self._holders = 0
        self._queue: deque[object] = deque()
        self._changed = threading.Condition()
        self.peak_in_use = 0
        self.peak_holders = 0

    def claim(self, size: int) -> Hold:
        """Room for ``size``; waits (never fails) until it fits."""
        ticket = object()
        with self._changed:
            self._queue.append(ticket)
            self._changed.wait_for(lambda: self._queue[0] is ticket and self._fits(size))
            self._queue.popleft()
            hold = self._grant(size)
            self._changed.notify_all()  # the next in line may fit as well
            return hold

    def try_claim(self, size: int) -> Hold | None:
        """Room for ``size`` if it fits now and nobody waits before; else None."""
        with self._changed:
            if self._queue or not self._fits(size):
                return None
            return self._grant(size)

    def _fits(self, size: int) -> bool:
        return self._holders == 0 or self._in_use + size <= self.limit

    def _grant(self, size: int) -> Hold:
        self._in_use += size
        self._holders += 1
        self._peaks()
        return Hold(self, size)

    def _peaks(self) -> None:
        self.peak_in_use = max(self.peak_in_use, self._in_use)
        self.peak_holders = max(self.peak_holders, self._holders)

    def _change(self, hold: Hold, size: int, *, release: bool = False) -> None:
        with self._changed:
            if hold._released:
                return
            self._in_use += size - hold.size
            hold.size = size
            if release:
                hold._released = True
                self._holders -= 1
            self._peaks()
            self._changed.notify_all()

    @property
    def in_use(self) -> int:
        with self._changed:
            return self._in_use

    @property
    def holders(self) -> int:
        with self._changed:
            return self._holders

    @property
    def waiting(self) -> int:
        """Claims waiting for room now."""
        with self._changed:
            return len(self._queue)
