"""A per-process budget of pixels being decoded at once, shared by every thread.

The pixel cap bounds one image; a worker decodes in many threads at once, so sixteen
threads on 88 MP 1-bit PNGs (10 KB each on disk) once held 2.5-3.5 GB. Every decode
claims its image's pixels first (:meth:`DecodeBudget.claim`) and waits while the claims
in progress leave no room for it. Nothing fails for lack of room: a claim larger than the
whole budget runs once nothing else is in progress, alone. Claims are served in arrival
order, so a large image is not overtaken forever by a stream of small ones.

A claim is the image's pixels, more where its decoder alone holds more (see
``worker.imaging._claim``), so that no decode holds more than
:data:`BYTES_PER_CLAIMED_PIXEL` per claimed pixel (worker/imaging/fit.py keeps every
later step to a source and one product; bench/memory.py measures it per format). Decode
memory per process therefore stays under ``8 x max(budget, largest single claim)`` bytes.
"""

from __future__ import annotations

import ctypes
import platform
from functools import cache

from worker.config import PILLOW_PIXEL_CAP
from worker.counted_budget import CountedBudget

BYTES_PER_CLAIMED_PIXEL = 8
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
# And up: mapped from the OS, unmapped when freed. 1 MiB, not more: a worker's source files,
# base64 and request bodies of 3 MB photos, served from per-thread arenas that kept them,
# held a worker 50-90 MB above what it used (bench/ratelimit.py, median RSS 277 -> 220 MB).
LARGE_ALLOCATION = 1 * 2**20


class DecodeBudget(CountedBudget):
    """A FIFO counting budget of pixels (:mod:`worker.counted_budget`): ``with
    budget.claim(pixels):`` holds them for the block."""

    unit = "pixel"

    @property
    def pixels(self) -> int:
        return self.limit


_SIZE = {"pixels": PILLOW_PIXEL_CAP}


def size_process_budget(pixels: int) -> None:
    """Set this process's budget (``VREC_DECODE_BUDGET_PIXELS``; the runtime does it when
    it starts); before the first decode, or it is too late to matter."""
    _SIZE["pixels"] = pixels
    process_budget.cache_clear()


@cache
def process_budget() -> DecodeBudget:
    """This process's budget, as sized by :func:`size_process_budget` (else Pillow's cap)."""
    return_freed_memory()
    return DecodeBudget(_SIZE["pixels"])


def return_freed_memory() -> bool:
    """Give freed pixel memory back to the OS (glibc only; True if it took effect).

    glibc raises its mmap threshold after the first large free, and then serves the next
    pixel blocks from per-thread arenas that keep what is freed: sixteen threads decoding
    81 MP images one at a time held 5.4 GB instead of 0.5 (bench/memory.py). A fixed
    threshold keeps every large block mapped from the OS and unmapped when freed.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    return mallopt is not None and mallopt(_M_MMAP_THRESHOLD, LARGE_ALLOCATION) == 1
