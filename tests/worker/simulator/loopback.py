"""Test helpers: the Tencent adapter talking to the simulator over 127.0.0.1.

Sync tests drive these with ``asyncio.run``; nothing is mocked: real aiohttp requests,
real signatures, the real simulator.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import SecretStr

from worker import http
from worker.config import Settings, SimulatorSettings, TencentVehicleLicenseSettings
from worker.errors import JobError
from worker.providers.base import PreparedImage, VendorAnswer
from worker.providers.tencent_vehicle_license import TencentVehicleLicense
from worker.simulator.directives import make_image
from worker.simulator.server import Simulator, point_at, run_simulator

SECRET_ID = "AKIDvrecTest0123456789abcdef"
SECRET_KEY = "vrec-test-secret-key-DO-NOT-LEAK-42"
NAME = "tencent_vehicle_license"


def make_settings(
    *,
    secret_id: str | None = SECRET_ID,
    secret_key: str | None = SECRET_KEY,
    **simulator: Any,
) -> Settings:
    return Settings(
        tencent_vehicle_license=TencentVehicleLicenseSettings(
            secret_id=SecretStr(secret_id) if secret_id else None,
            secret_key=SecretStr(secret_key) if secret_key else None,
        ),
        simulator=SimulatorSettings(**simulator),
    )


def prepared(
    directive: Mapping[str, Any] | None = None, *, data: bytes | None = None, **kwargs: Any
) -> PreparedImage:
    data = data if data is not None else make_image(directive, **kwargs)
    return PreparedImage(data, base64.b64encode(data), "PNG", 64, 48, transformed=False)


@dataclass
class Loopback:
    base_url: str
    simulator: Simulator
    session: aiohttp.ClientSession
    settings: Settings  # pointed at the simulator

    def adapter(
        self,
        *,
        secret_id: str | None = SECRET_ID,
        secret_key: str | None = SECRET_KEY,
        clock: Callable[[], float] | None = None,
    ) -> TencentVehicleLicense:
        block = self.settings.tencent_vehicle_license.model_copy(
            update={
                "secret_id": SecretStr(secret_id) if secret_id else None,
                "secret_key": SecretStr(secret_key) if secret_key else None,
            }
        )
        if clock is None:
            return TencentVehicleLicense(block)
        return TencentVehicleLicense(block, clock=clock)

    async def call(
        self,
        image: PreparedImage,
        options: Mapping[str, str] | None = None,
        *,
        adapter: TencentVehicleLicense | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - the provider's timeout setting
    ) -> VendorAnswer | JobError:
        """One full call; a JobError is returned, not raised, so tests can gather many."""
        provider = adapter or self.adapter()
        request = provider.build_request(image, options or {})
        try:
            response = await http.send(self.session, request, provider=NAME, timeout=timeout)
            return provider.parse_response(response)
        except JobError as exc:
            return exc


@asynccontextmanager
async def loopback(settings: Settings | None = None) -> AsyncIterator[Loopback]:
    settings = settings or make_settings()
    async with (
        run_simulator(settings, providers=[NAME]) as (url, sim),
        aiohttp.ClientSession() as session,
    ):
        yield Loopback(url, sim, session, point_at(settings, url, [NAME]))


def run(coro: Any) -> Any:
    return asyncio.run(coro)
