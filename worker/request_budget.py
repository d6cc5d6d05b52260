"""A per-process budget of prepared request bytes, shared by every thread.

A prepared request (the image fitted, encoded, base64'd and signed) is megabytes, and it
used to be built by every task thread before its limiter wait: 32 threads each held a
~4 MB request while waiting for their slot (a worker with real photos at 450-510 MB).
Now each job claims room here *before* its image is prepared (the provider's largest
request, :func:`request_claim`), shrinks the claim to the request's real size once it is
built (:meth:`Hold.resize`), and gives it back when its call is over (:meth:`Hold.release`),
whatever the outcome. So at most :attr:`RequestBudget.limit` bytes of prepared requests
exist in a process at once, and the waiting for room happens before the limiter: a job
in the limiter's queue is one whose bytes are already counted. A call in flight holds its
room until its answer is in (aiohttp holds the body until then), so one process calling
a vendor at R/s with L s of latency needs about R x L requests' worth: 32 MiB is seven
Tencent requests of 3 MB photos, enough when several workers share a vendor's 10/s.

Nothing fails for lack of room: a claim larger than the whole budget is granted once
nothing else is held, alone. Claims are served in arrival order. A thread that already
holds room (earlier jobs of its chunk, prepared and not yet sent) must not wait for more,
or two such threads could wait on each other: it asks with :meth:`RequestBudget.try_claim`
and, refused, sends what it holds first (worker.pipeline does this).
"""

from __future__ import annotations

import threading
from collections import deque
from functools import cache

# What a request carries besides its image's base64 (JSON or form fields, signature,
# multipart headers): a generous bound, so that a claim made before preparing covers it.
ENVELOPE_BYTES = 64 * 1024
DEFAULT_LIMIT = 32 * 2**20


class Hold:
    """Room held in a :class:`RequestBudget`; release it exactly once (later calls do
    nothing)."""

    def __init__(self, budget: RequestBudget, size: int) -> None:
        self._budget = budget
        self.size = size
        self._released = False

    def resize(self, size: int) -> None:
        """Hold ``size`` bytes instead (the request as built): less gives room back at
        once; more is taken without waiting (the claim was meant to be the upper bound)."""
        self._budget._change(self, size)

    def release(self) -> None:
        self._budget._change(self, 0, release=True)


class RequestBudget:
    """A FIFO counting budget of bytes; thread-safe. ``peak_in_use`` and ``peak_holders``
    are what tests and benchmarks observe."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a request budget needs at least one byte, not {limit}")
        self.limit = limit
        self._in_use = 0
        self._holders = 0
        self._queue: deque[object] = deque()
        self._changed = threading.Condition()
        self.peak_in_use = 0
        self.peak_holders = 0

    def claim(self, size: int) -> Hold:
        """Room for ``size`` bytes; waits (never fails) until it fits."""
        ticket = object()
        with self._changed:
            self._queue.append(ticket)
            self._changed.wait_for(lambda: self._queue[0] is ticket and self._fits(size))
            self._queue.popleft()
            hold = self._grant(size)
            self._changed.notify_all()  # the next in line may fit as well
            return hold

    def try_claim(self, size: int) -> Hold | None:
        """Room for ``size`` bytes if it fits now and nobody waits before; else None."""
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


def request_claim(max_b64_bytes: int) -> int:
    """What a job claims before its image is prepared: the largest request its provider
    takes (``ImageLimits.max_b64_bytes``) and its envelope."""
    return max_b64_bytes + ENVELOPE_BYTES


_SIZE = {"limit": DEFAULT_LIMIT}


def size_process_budget(limit: int) -> None:
    """Set this process's budget (``VREC_REQUEST_BUDGET_BYTES``; the runtime does it when
    it starts)."""
    _SIZE["limit"] = limit
    process_budget.cache_clear()


@cache
def process_budget() -> RequestBudget:
    """This process's budget, as sized by :func:`size_process_budget`."""
    return RequestBudget(_SIZE["limit"])
