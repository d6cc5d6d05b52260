"""Per-process in-flight caps that work across every event loop and thread of the process."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(eq=False)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    granted: bool = False  # set under the gate's lock when a place is handed to this waiter


class _Gate:
    """A counting semaphore usable from any event loop in any thread of the process.

    ``asyncio.Semaphore`` is bound to one loop; a per-process cap must not be. A released
    place is handed directly to the oldest waiter (FIFO, no barging), and whoever holds a
    granted place it will not use (a cancelled waiter) gives it back exactly once.
    """

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._used = 0
        self._waiters: deque[_Waiter] = deque()
        self._lock = threading.Lock()

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._used < self._cap and not self._waiters:
                self._used += 1
                return
            waiter = _Waiter(loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            await waiter.future
        except BaseException:
            with self._lock:
                if waiter.granted:
                    self._release_locked()  # handed a place we will not use: pass it on
                else:
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        with self._lock:
            self._release_locked()

    def _release_locked(self) -> None:
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.granted = True  # the place moves to the waiter; _used is unchanged
            waiter.loop.call_soon_threadsafe(_wake, waiter.future)
        else:
            self._used -= 1


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():  # cancelled meanwhile: its owner sees ``granted`` and releases
        future.set_result(None)


class Caps:
    """Per-process in-flight caps, one gate per (key, cap)."""

    def __init__(self) -> None:
        self._gates: dict[tuple[str, int], _Gate] = {}
        self._lock = threading.Lock()

    def hold(self, key: str, cap: int | None) -> contextlib.AbstractAsyncContextManager[None]:
        if cap is None:
            return contextlib.nullcontext()
        if cap < 1:
            raise ValueError(f"in-flight cap must be >= 1 or None, not {cap!r}")
        with self._lock:
            gate = self._gates.setdefault((key, cap), _Gate(cap))
        return _held(gate)


@contextlib.asynccontextmanager
async def _held(gate: _Gate) -> AsyncIterator[None]:
    await gate.acquire()
    try:
        yield
    finally:
        gate.release()
