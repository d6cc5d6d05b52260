"""Test helpers shared by the provider tests: prepared images, an adapter over loopback.

Sync tests drive these with ``asyncio.run``; nothing is mocked: real aiohttp requests,
real signatures, the real simulator. A test module subclasses :class:`Loopback` with an
``adapter()`` building its provider from ``settings`` (pointed at the simulator).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from worker import http
from worker.config import Settings
from worker.errors import (
    BadResponse,
    JobError,
    ProviderUnavailable,
    RateLimited,
    ServerError,
    VendorRejectedImage,
)
from worker.providers.base import (
    PreparedImage,
    Provider,
    VendorAnswer,
    VendorRequest,
    VendorResponse,
)
from worker.simulator.directives import make_image
from worker.simulator.server import Simulator, point_at, run_simulator

# (status, body, error): non-200 answers, from a proxy or gateway, of a vendor that answers
# HTTP 200 even for its errors (worker.providers.common.http_status_error).
NON_200_ANSWERS: list[tuple[int, bytes, type[JobError]]] = [
    (502, b"Bad Gateway", ServerError),
    (500, b"", ServerError),
    (429, b"", RateLimited),
    (403, b"", ProviderUnavailable),
    (404, b"", ProviderUnavailable),
    (413, b"", VendorRejectedImage),
    (400, b"", BadResponse),
]


def prepared(
    directive: Mapping[str, Any] | None = None,
    *,
    data: bytes | None = None,
    fmt: str = "PNG",
    **kwargs: Any,
) -> PreparedImage:
    """An image as the pipeline hands it over; ``data`` as given, or made to ``directive``."""
    data = data if data is not None else make_image(directive, fmt=fmt, **kwargs)
    width, height = kwargs.get("size", (64, 48))
    return PreparedImage(data, base64.b64encode(data), fmt, width, height, transformed=False)


@dataclass
class Loopback:
    base_url: str
    simulator: Simulator
    session: aiohttp.ClientSession
    settings: Settings  # pointed at the simulator

    def adapter(self) -> Provider:
        raise NotImplementedError  # each test module's subclass builds its own

    async def send(
        self,
        provider: Provider,
        request: VendorRequest,
        timeout: float = 10.0,  # noqa: ASYNC109 - the provider's timeout setting
    ) -> VendorAnswer | JobError:
        """One request over loopback, parsed; a JobError is returned, not raised."""
        try:
            response = await http.send(
                self.session, request, provider=provider.name, timeout=timeout
            )
            return provider.parse_response(response)
        except JobError as exc:
            return exc

    async def call(
        self,
        image: PreparedImage,
        options: Mapping[str, str] | None = None,
        *,
        adapter: Provider | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - the provider's timeout setting
    ) -> VendorAnswer | JobError:
        """One full call; a JobError is returned, not raised, so tests can gather many."""
        provider = adapter or self.adapter()
        try:
            request = provider.build_request(image, options or {})
        except JobError as exc:
            return exc
        return await self.send(provider, request, timeout)

    async def by_hand(
        self, method: str, url: str, data: Any = None, **kwargs: Any
    ) -> VendorAnswer | JobError:
        """A hand-made request (wrong method, missing fields), parsed by the adapter."""
        async with self.session.request(method, url, data=data, **kwargs) as response:
            answer = VendorResponse(response.status, response.headers, await response.read())
        try:
            return self.adapter().parse_response(answer)
        except JobError as exc:
            return exc


L = TypeVar("L", bound=Loopback)


@asynccontextmanager
async def loopback(settings: Settings, name: str, kind: type[L]) -> AsyncIterator[L]:
    """The simulator for provider ``name`` on 127.0.0.1, a session, settings pointed at it."""
    async with (
        run_simulator(settings, providers=[name]) as (url, sim),
        aiohttp.ClientSession() as session,
    ):
        yield kind(url, sim, session, point_at(settings, url, [name]))
