"""The simulator's injected faults, shared by the server and by ``{"fault": ...}`` directives.

=============  ==============================================================
``5xx``        HTTP 502 or 503 from a "gateway", plain text
``timeout``    no answer until the server shuts down (far beyond any client timeout)
``reset``      the connection is aborted without an answer
``malformed``  HTTP 200, ``application/json``, a truncated JSON document
``error200``   HTTP 200 carrying the vendor's own internal-error code
=============  ==============================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Final, Protocol

from aiohttp import web

FAULTS: Final = ("5xx", "timeout", "reset", "malformed", "error200")
HANG_SECONDS: Final = 3600.0
# Set by the server when it shuts down, so hanging "timeout" answers end with it.
CLOSING: Final = web.AppKey("vrec_sim_closing", asyncio.Event)


class ErrorIn200(Protocol):
    """What a fault needs of a vendor's simulator: its internal error in an HTTP 200."""

    def error_in_200(self) -> web.Response: ...


class ConnectionAborted(Exception):
    """Raised after aborting the transport: the server must not try to answer."""


async def answer(
    fault: str,
    request: web.Request,
    sim: ErrorIn200,
    *,
    rng: random.Random | None = None,
) -> web.Response:
    """The response (or the lack of one) that ``fault`` stands for."""
    if fault == "5xx":
        status = (rng or random).choice((502, 503))
        return web.Response(status=status, text="Bad Gateway" if status == 502 else "Busy")
    if fault == "malformed":
        return web.Response(status=200, body=b'{"Response": {"Req', content_type="application/json")
    if fault == "error200":
        return sim.error_in_200()
    if fault == "timeout":
        # Wake at shutdown rather than holding the server's cleanup for an hour.
        closing = request.app.get(CLOSING) or asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), HANG_SECONDS)
        _abort(request)
    if fault == "reset":
        _abort(request)
    raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()
    raise ConnectionAborted
