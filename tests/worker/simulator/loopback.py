"""Test helpers: the Tencent adapter talking to the simulator over 127.0.0.1.

Sync tests drive these with ``asyncio.run``; nothing is mocked: real aiohttp requests,
real signatures, the real simulator. The generic part is tests/worker/providers/support.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from pydantic import SecretStr

from tests.worker.providers import support
from tests.worker.providers.support import prepared
from worker.config import Settings, SimulatorSettings
from worker.providers.tencent_vehicle_license import (
    TencentVehicleLicense,
    TencentVehicleLicenseSettings,
)
from worker.settings import build_settings

__all__ = ["Loopback", "loopback", "make_settings", "prepared", "run"]

SECRET_ID = "AKIDvrecTest0123456789abcdef"
SECRET_KEY = "vrec-test-secret-key-DO-NOT-LEAK-42"
NAME = "tencent_vehicle_license"


def make_settings(
    *,
    secret_id: str | None = SECRET_ID,
    secret_key: str | None = SECRET_KEY,
    **simulator: Any,
) -> Settings:
    return build_settings(
        tencent_vehicle_license=TencentVehicleLicenseSettings(
            secret_id=SecretStr(secret_id) if secret_id else None,
            secret_key=SecretStr(secret_key) if secret_key else None,
        ),
        simulator=SimulatorSettings(**simulator),
    )


class Loopback(support.Loopback):
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


@asynccontextmanager
async def loopback(settings: Settings | None = None) -> AsyncIterator[Loopback]:
    async with support.loopback(settings or make_settings(), NAME, Loopback) as lb:
        yield lb


def run(coro: Any) -> Any:
    return asyncio.run(coro)
