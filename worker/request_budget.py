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

from functools import cache

from worker.counted_budget import CountedBudget, Hold

__all__ = ["Hold", "RequestBudget", "process_budget", "request_claim", "size_process_budget"]

# What a request carries besides its image's base64 (JSON or form fields, signature,
# multipart headers): a generous bound, so that a claim made before preparing covers it.
ENVELOPE_BYTES = 64 * 1024
DEFAULT_LIMIT = 32 * 2**20


class RequestBudget(CountedBudget):
    """A FIFO counting budget of bytes (:mod:`worker.counted_budget`)."""

    unit = "byte"


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
