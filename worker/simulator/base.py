"""Contract between the simulator server and one vendor's simulator module, and the shell
every vendor's ``Sim`` shares.

Each vendor has a module ``worker.simulator.<provider name>`` defining ``class Sim``
that satisfies :class:`VendorSim`. The server (:mod:`worker.simulator.server`) mounts
every registered provider's ``Sim`` on its real paths and wraps each call with what is
common to all vendors, in this order: count the arrival (stats) and decide the vendor's
per-second limit right then, sleep the configured latency, then answer with
``Sim.throttled()`` if the call was over the limit on arrival, else inject a configured
fault or hand over to ``Sim.handle``.

:class:`SimBase` is ``handle``, the same for every vendor; a vendor's ``Sim`` fills in
its steps, each in the vendor's own envelope and codes:

1. :meth:`~SimBase.accept`: the request as the vendor checks it (method, content type,
   auth against the same ``VREC_<PROVIDER>__*`` settings the adapter reads, fields,
   sizes, base64), giving a :class:`Call` or raising :class:`Refusal`;
2. the per-day quota of the call's credential (:attr:`Context.spend`, the server's
   ``quotas`` knob): spent -> :meth:`~SimBase.quota_exhausted`;
3. the image, decoded and looked at (:func:`worker.simulator.scene.look`): unreadable ->
   :meth:`~SimBase.unreadable`; :meth:`~SimBase.check_scene` for what else the vendor
   refuses (sizes);
4. the image's directive (:mod:`worker.simulator.directives`): a fault, an error code or
   "nothing found";
5. :meth:`~SimBase.answer`: what the vendor reads from what the image shows, with the
   image's seeded :class:`Flaw` (``warning_rate`` / ``failure_rate``), if any.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

from aiohttp import web

from worker.config import ProviderSettings, SimulatorSettings
from worker.simulator import faults, scene
from worker.simulator.directives import Directive


@dataclass(frozen=True)
class Context:
    """What the server hands each call: its knobs, and the quota to spend from."""

    knobs: SimulatorSettings = field(default_factory=SimulatorSettings)
    # Counts one call against a credential's daily quota; False when it is spent.
    spend: Callable[[str], bool] = lambda _credential: True


@runtime_checkable
class VendorSim(Protocol):
    provider: ClassVar[str]  # registry name, e.g. "tencent_vehicle_license"
    routes: ClassVar[tuple[tuple[str, str], ...]]  # (method, path) as on the real host
    default_limit: ClassVar[int]  # calls per trailing second the vendor allows by default
    # The vendor's own code for "internal error, try again", as error_in_200() answers it
    # (what vrec's adapter must read as a transient, retryable ServerError).
    internal_error_code: ClassVar[str]

    def __init__(self, settings: ProviderSettings) -> None: ...

    async def handle(self, request: web.Request, body: bytes, context: Context) -> web.Response:
        """Auth, fields, image checks, then a success or error answer in the vendor's envelope."""
        ...

    def throttled(self) -> web.Response:
        """The vendor's own answer to a call over its per-second limit."""
        ...

    def error_in_200(self) -> web.Response:
        """An HTTP 200 whose body carries the vendor's internal-error code."""
        ...


class Refusal(Exception):
    """A request check failed: answer ``response``."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(frozen=True)
class Call:
    """A request the vendor accepted: whose quota it spends, the image, its options."""

    credential: str
    image: bytes
    options: Mapping[str, str] = field(default_factory=dict)


class Flaw(enum.Enum):
    """What the seeded shares do to an otherwise good image."""

    WARNING = "warning"  # read, with a warning or a lower confidence
    FAILURE = "failure"  # the vendor fails to read it


class SimBase:
    """The shell of every vendor's ``Sim`` (see the module docstring)."""

    provider: ClassVar[str]
    routes: ClassVar[tuple[tuple[str, str], ...]]
    default_limit: ClassVar[int]
    internal_error_code: ClassVar[str]
    settings_class: ClassVar[type[ProviderSettings]]

    def __init__(
        self, settings: ProviderSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        if not isinstance(settings, self.settings_class):
            raise TypeError(f"{self.provider} Sim needs {self.settings_class.__name__}")
        self.settings = settings
        self._clock = clock

    async def handle(self, request: web.Request, body: bytes, context: Context) -> web.Response:
        try:
            call = self.accept(request, body)
        except Refusal as refusal:
            return refusal.response
        if not context.spend(call.credential):
            return self.quota_exhausted()
        # Off the event loop (Pillow lets go of the GIL while decoding): a 12 MP photo takes
        # tens of ms to look at, and a blocked loop would count the arrivals queued behind
        # it in a burst, a vendor's limit broken by the simulator's own clock.
        seen = await asyncio.to_thread(scene.look, call.image)
        if isinstance(seen, scene.Unreadable):
            return self.unreadable(seen)
        refused = self.check_scene(seen)
        if refused is not None:
            return refused
        directive = Directive.from_json(seen.directive)
        if directive.fault:
            return await faults.answer(directive.fault, request, self)
        if directive.error:
            return self.directed_error(directive)
        if directive.empty:
            return self.nothing_found(call)
        return self.answer(call, seen, directive, flaw_of(seen, self.provider, context.knobs))

    # -- the steps a vendor fills in ------------------------------------------------------

    def accept(self, request: web.Request, body: bytes) -> Call:
        """The request checked as the vendor checks it; Refusal otherwise."""
        raise NotImplementedError

    def quota_exhausted(self) -> web.Response:
        """The vendor's answer once a credential's calls for the day are spent."""
        raise NotImplementedError

    def unreadable(self, kind: scene.Unreadable) -> web.Response:
        """The vendor's answer to bytes that are not an image it decodes."""
        raise NotImplementedError

    def check_scene(self, seen: scene.Scene) -> web.Response | None:
        """What else the vendor refuses about a decoded image (its sizes); None: nothing."""
        return None

    def directed_error(self, directive: Directive) -> web.Response:
        """The answer carrying a directive's ``error`` code."""
        raise NotImplementedError

    def nothing_found(self, call: Call) -> web.Response:
        """The vendor's "looked, found nothing" answer."""
        raise NotImplementedError

    def answer(
        self, call: Call, seen: scene.Scene, directive: Directive, flaw: Flaw | None
    ) -> web.Response:
        """What the vendor reads from what ``seen`` shows."""
        raise NotImplementedError

    def throttled(self) -> web.Response:
        raise NotImplementedError

    def error_in_200(self) -> web.Response:
        raise NotImplementedError


def flaw_of(seen: scene.Scene, provider: str, knobs: SimulatorSettings) -> Flaw | None:
    """The seeded flaw of an image at one vendor: the same bytes always draw the same."""
    draw = seen.fraction(f"{knobs.seed}:{provider}:flaw")
    if draw < knobs.failure_rate:
        return Flaw.FAILURE
    if draw < knobs.failure_rate + knobs.warning_rate:
        return Flaw.WARNING
    return None
