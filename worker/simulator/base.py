"""Contract between the simulator server and one vendor's simulator module.

Each vendor has a module ``worker.simulator.<provider name>`` defining ``class Sim``
that satisfies :class:`VendorSim`. The server (:mod:`worker.simulator.server`) mounts
every registered provider's ``Sim`` on its real paths and wraps each call with what is
common to all vendors, in this order: count the arrival (stats) and decide the vendor's
per-second limit right then, sleep the configured latency, then answer with
``Sim.throttled()`` if the call was over the limit on arrival, else inject a configured
fault or hand over to ``Sim.handle``.

``Sim.handle`` is faithful to the vendor's doc: it checks auth (keys, APPCODE,
signatures) against the same ``VREC_<PROVIDER>__*`` settings the adapter reads,
required fields, image decoding and size limits, and answers in the vendor's envelope
with the vendor's own codes. Answers are deterministic per image
(:mod:`worker.simulator.synth`) unless the image dictates them
(:mod:`worker.simulator.directives`).
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from aiohttp import web

from worker.config import ProviderSettings


@runtime_checkable
class VendorSim(Protocol):
    provider: ClassVar[str]  # registry name, e.g. "tencent_vehicle_license"
    routes: ClassVar[tuple[tuple[str, str], ...]]  # (method, path) as on the real host
    default_limit: ClassVar[int]  # calls per trailing second the vendor allows by default
    # The vendor's own code for "internal error, try again", as error_in_200() answers it
    # (what vrec's adapter must read as a transient, retryable ServerError).
    internal_error_code: ClassVar[str]

    def __init__(self, settings: ProviderSettings) -> None: ...

    async def handle(self, request: web.Request, body: bytes) -> web.Response:
        """Auth, fields, image checks, then a success or error answer in the vendor's envelope."""
        ...

    def throttled(self) -> web.Response:
        """The vendor's own answer to a call over its per-second limit."""
        ...

    def error_in_200(self) -> web.Response:
        """An HTTP 200 whose body carries the vendor's internal-error code."""
        ...
