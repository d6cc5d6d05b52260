"""One provider under test: its settings with made-up credentials, its adapter, and the
adapter talking to the provider's simulator over 127.0.0.1.

:class:`Vendor` is built from a registry name alone: the credential fields come from the
provider's settings model, each with a fixed, obviously fake value (:func:`fake_secret`),
so a test module names no settings class and no adapter class to get either. Nothing is
mocked: real aiohttp requests, real signatures, the real simulator. Sync tests drive the
async parts with ``asyncio.run`` (or :meth:`Vendor.one` / :meth:`Vendor.run`).

The ``vendor`` fixture (tests/worker/conftest.py) gives the :class:`Vendor` a module names
with ``pytestmark = pytest.mark.vendor(NAME)``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from PIL import Image

from worker import errors, http
from worker.config import ProviderSettings, Settings, SimulatorSettings, secret_fields
from worker.errors import JobError
from worker.image_limits import PreparedImage
from worker.jobrun import JobRun
from worker.pipeline import redacted
from worker.providers.base import Provider, VendorAnswer, VendorRequest, VendorResponse
from worker.providers.registry import provider_class, settings_models
from worker.redaction import Redactor
from worker.settings import build_settings
from worker.simulator.directives import make_image, with_directive
from worker.simulator.environment import point_at
from worker.simulator.server import Simulator, run_simulator

Result = VendorAnswer | JobError
T = TypeVar("T")
B = TypeVar("B", bound=ProviderSettings)

# (status, body, error): non-200 answers, from a proxy or gateway, of a vendor that answers
# HTTP 200 even for its errors (worker.providers.common.http_status_error).
NON_200_ANSWERS: list[tuple[int, bytes, type[JobError]]] = [
    (502, b"Bad Gateway", errors.ServerError),
    (500, b"", errors.ServerError),
    (429, b"", errors.RateLimited),
    (403, b"", errors.ProviderUnavailable),
    (404, b"", errors.ProviderUnavailable),
    (413, b"", errors.VendorRejectedImage),
    (400, b"", errors.BadResponse),
]


def fake_secret(name: str, field: str) -> str:
    """The made-up value of credential ``field`` of provider ``name``: fixed, so tables and
    test ids can hold it, and named for what it is. It names the vendor (the part of the
    provider name before ``_``), so one vendor's APIs share an account's key, as Juhe's do."""
    return f"vrec-{name.partition('_')[0]}-test-{field}-DO-NOT-LEAK-0123456789"


# Tests decide their outcomes through the images they draw: no seeded flaws by default.
EXACT: dict[str, Any] = {"warning_rate": 0.0, "failure_rate": 0.0}


def prepared(
    directive: Mapping[str, Any] | None = None,
    *,
    data: bytes | None = None,
    fmt: str = "PNG",
    **kwargs: Any,
) -> PreparedImage:
    """An image as the pipeline hands it over: ``data`` as given (with ``directive`` drawn
    below it, if any), or a plain image made to ``directive`` (``size``, ``color``)."""
    if data is None:
        data = make_image(directive, fmt=fmt, **kwargs)
    elif directive:
        data = with_directive(data, directive)
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, (width, height) = im.format or fmt, im.size
    except (OSError, ValueError, SyntaxError):  # not an image: what the test claims it is
        width, height = kwargs.get("size", (640, 480))
    return PreparedImage(data, base64.b64encode(data), fmt, width, height, transformed=False)


def provider_block(settings: Settings, model: type[B]) -> B:
    """The block of the provider whose settings model is ``model``, typed as such (the
    assembled settings class has its provider fields at run time only)."""
    (name,) = [name for name, m in settings_models().items() if m is model]
    block = settings.provider(name)
    assert isinstance(block, model)
    return block


def fake_settings(names: Iterable[str], **simulator: Any) -> Settings:
    """Settings with every credential of providers ``names`` made up, the simulator's knobs
    as given (``throttle``, ``limits``, ...)."""
    vendors = [Vendor(name) for name in names]
    blocks = {v.name: v.model.model_validate(v.credentials) for v in vendors}
    return build_settings(**blocks, simulator=SimulatorSettings(**{**EXACT, **simulator}))


async def call(
    session: aiohttp.ClientSession,
    provider: Provider,
    image: PreparedImage,
    options: Mapping[str, str] | None = None,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - the provider's timeout setting
) -> Result:
    """One full vendor call, parsed; a JobError is returned, not raised, so tests can gather
    many."""
    try:
        request = provider.build_request(image, options or {})
    except JobError as exc:
        return exc
    return await send(session, provider, request, timeout=timeout)


async def send(
    session: aiohttp.ClientSession,
    provider: Provider,
    request: VendorRequest,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - the provider's timeout setting
) -> Result:
    """One request as built, parsed by ``provider``; a JobError is returned, not raised."""
    try:
        response = await http.send(session, request, provider=provider.name, timeout=timeout)
        return provider.parse_response(response)
    except JobError as exc:
        return exc


def _body(body: Any) -> bytes:
    """Bytes as they are, text encoded, anything else as the JSON of a decoded answer."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, ensure_ascii=False).encode()


class Vendor:
    """Provider ``name`` under test. ``pinned`` fixes some credentials' values (a doc's
    example value a table quotes); every other credential is :func:`fake_secret`'s."""

    def __init__(self, name: str, **pinned: str) -> None:
        self.name = name
        self.adapter_class = provider_class(name)
        self.model = self.adapter_class.settings_model
        fields = secret_fields(self.model)
        if unknown := set(pinned) - set(fields):
            raise TypeError(f"{name} has no credential {', '.join(sorted(unknown))}")
        self.credentials = {f: pinned.get(f, fake_secret(name, f)) for f in fields}

    def __repr__(self) -> str:
        return f"Vendor({self.name!r})"

    def settings(self, **values: Any) -> Settings:
        """Settings with this provider's made-up credentials; ``values`` name fields of its
        block (``key=None`` unsets one) or the simulator's knobs (``throttle=False``)."""
        block, knobs = self._split(values)
        if unknown := set(knobs) - set(SimulatorSettings.model_fields):
            raise TypeError(f"{self.name}: neither a block field nor a knob: {sorted(unknown)}")
        fields = {**self.credentials, **block}
        return build_settings(
            **{self.name: self.model.model_validate(fields)},
            simulator=SimulatorSettings(**{**EXACT, **knobs}),
        )

    def block(self, settings: Settings | None = None) -> ProviderSettings:
        """This provider's block of ``settings`` (default: :meth:`settings`)."""
        return (settings or self.settings()).provider(self.name)

    def adapter(self, settings: Settings | None = None, **values: Any) -> Provider:
        """The adapter on ``settings`` (default: :meth:`settings`); ``values`` name fields of
        its block to change (``key="other"``) or its constructor's extras (``clock=...``)."""
        block = self.block(settings)
        fields, extras = self._split(values)
        if fields:
            block = self.model.model_validate({**dict(block), **fields})
        adapter: Provider = self.adapter_class(block, **extras)  # type: ignore[call-arg]
        return adapter

    def answer(
        self, body: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> VendorAnswer:
        """The adapter's reading of an answer, offline: ``body`` as bytes or text, or decoded
        JSON to encode. Raises the JobError the adapter raises."""
        response = VendorResponse(status, dict(headers or {}), _body(body))
        return self.adapter().parse_response(response)

    def result(
        self, body: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Result:
        """:meth:`answer`, its JobError returned instead of raised (for code tables)."""
        try:
            return self.answer(body, status, headers)
        except JobError as exc:
            return exc

    def stored(
        self, body: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Result:
        """:meth:`result` as the pipeline keeps it: every configured credential masked
        (:mod:`worker.redaction`)."""
        got = self.result(body, status, headers)
        run = JobRun(answer=got) if isinstance(got, VendorAnswer) else JobRun(error=got)
        kept = redacted(run, Redactor.of(self.settings()))
        return kept.answer or kept.error  # type: ignore[return-value]

    @asynccontextmanager
    async def loopback(self, settings: Settings | None = None) -> AsyncIterator[Loopback]:
        """This provider's simulator on 127.0.0.1 for ``settings`` (default:
        :meth:`settings`), a session, and the settings pointed at the simulator."""
        async with simulated(settings or self.settings(), [self.name]) as sim:
            yield Loopback(sim.base_url, sim.simulator, sim.session, sim.settings, self)

    def run(
        self, scenario: Callable[[Loopback], Awaitable[T]], settings: Settings | None = None
    ) -> T:
        """``scenario`` over a fresh :meth:`loopback`, from sync code."""

        async def main() -> T:
            async with self.loopback(settings) as lb:
                return await scenario(lb)

        return asyncio.run(main())

    def one(self, image: PreparedImage, settings: Settings | None = None, **kwargs: Any) -> Result:
        """One :meth:`Loopback.call` over a fresh loopback, from sync code."""
        return self.run(lambda lb: lb.call(image, **kwargs), settings)

    def _split(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``values`` as (fields of this provider's block, the rest)."""
        block = {k: v for k, v in values.items() if k in self.model.model_fields}
        return block, {k: v for k, v in values.items() if k not in block}


@dataclass
class Simulated:
    """A running simulator on 127.0.0.1, a session, and settings pointed at it."""

    base_url: str
    simulator: Simulator
    session: aiohttp.ClientSession
    settings: Settings

    async def plain(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """A hand-made request to the simulator at ``path``: (status, decoded JSON body),
        no adapter involved."""
        async with self.session.request(method, self.base_url + path, **kwargs) as response:
            return response.status, json.loads(await response.read())


@asynccontextmanager
async def simulated(settings: Settings, names: Iterable[str]) -> AsyncIterator[Simulated]:
    """The simulator of providers ``names`` for ``settings``, served on 127.0.0.1."""
    names = list(names)
    async with (
        run_simulator(settings, providers=names) as (url, sim),
        aiohttp.ClientSession() as session,
    ):
        yield Simulated(url, sim, session, point_at(settings, url, names))


@dataclass
class Loopback(Simulated):
    """A :class:`Vendor`'s adapter and its simulator: calls, sends and hand-made requests,
    each answered with the adapter's reading or its JobError (returned, not raised)."""

    vendor: Vendor

    def adapter(self, **values: Any) -> Provider:
        """The adapter on the pointed settings, holding the vendor's made-up credentials
        whatever the simulator was given (``settings(key=None)``: a simulator that knows no
        key); ``values`` as :meth:`Vendor.adapter`'s."""
        return self.vendor.adapter(self.settings, **{**self.vendor.credentials, **values})

    async def call(
        self,
        image: PreparedImage,
        options: Mapping[str, str] | None = None,
        *,
        adapter: Provider | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - the provider's timeout setting
    ) -> Result:
        return await call(self.session, adapter or self.adapter(), image, options, timeout=timeout)

    async def send(
        self,
        provider: Provider,
        request: VendorRequest,
        timeout: float = 10.0,  # noqa: ASYNC109 - the provider's timeout setting
    ) -> Result:
        return await send(self.session, provider, request, timeout=timeout)

    async def by_hand(self, method: str, url: str, data: Any = None, **kwargs: Any) -> Result:
        """A hand-made request (wrong method, missing fields), parsed by the adapter."""
        async with self.session.request(method, url, data=data, **kwargs) as response:
            answer = VendorResponse(response.status, response.headers, await response.read())
        try:
            return self.adapter().parse_response(answer)
        except JobError as exc:
            return exc

    async def raw(self, method: str, path: str = "", data: Any = None, **kwargs: Any) -> Result:
        """:meth:`by_hand` to the provider's base URL (plus ``path``) on the simulator."""
        return await self.by_hand(
            method, self.vendor.block(self.settings).base_url + path, data, **kwargs
        )
