"""The limiter protocol, the AIMD parameters and helpers both implementations share."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import Protocol


class Limiter(Protocol):
    """What the pipeline calls around every vendor request."""

    async def acquire(self, key: str, rate: float, *, max_wait: float) -> float:
        """Reserve the next slot for ``key`` at ``rate`` calls/s and sleep until it.

        A caller that wakes more than ``margin / 2`` seconds after its slot forfeits it and
        reserves again (see :func:`late`). Returns the seconds waited in all. Raises
        :class:`~worker.errors.LimiterBusy` (key, wait) *without reserving* if the next
        slot is more than ``max_wait`` seconds after the call began (a total budget).
        """
        ...

    async def penalize(self, key: str, *, retry_after: float | None = None) -> None:
        """The vendor throttled us: cut ``key``'s effective rate for every worker (AIMD)."""
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
    """How a throttle answer slows a key down and how it recovers (shares of the rate)."""

    decrease: float = 0.5  # multiplicative decrease per throttle event
    floor: float = 0.1  # never below this share of the configured rate
    recover_per_second: float = 0.05  # additive increase: back to full in <= 18 s
    cooldown: float = 1.0  # seconds after a cut during which further throttles are echoes

    def __post_init__(self) -> None:
        if not (0 < self.decrease < 1 and 0 < self.floor <= 1):
            raise ValueError("Aimd needs 0 < decrease < 1 and 0 < floor <= 1")
        if self.recover_per_second <= 0 or self.cooldown < 0:
            raise ValueError("Aimd needs recover_per_second > 0 and cooldown >= 0")

    @property
    def recovery_seconds(self) -> float:
        """Longest time a penalty can last (from the floor back to the full rate)."""
        return (1 - self.floor) / self.recover_per_second


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


async def sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` on :func:`time.monotonic` (the default loop clock)."""
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
