"""Provider registry: name -> dotted path, imported on first use (as fsspec's registry).

Adding a vendor is one module in this package, one line here and its simulator module
``worker.simulator.<name>``.
"""

from __future__ import annotations

import importlib
from functools import cache

from worker.config import Settings, get_settings
from worker.errors import ConfigError
from worker.providers.base import Provider

PROVIDERS: dict[str, str] = {
    "tencent_vehicle_license": "worker.providers.tencent_vehicle_license:TencentVehicleLicense",
    "tianapi_plate": "worker.providers.tianapi_plate:TianapiPlate",
    "aliyun_plate": "worker.providers.aliyun_plate:AliyunPlate",
    "juhe_car": "worker.providers.juhe_car:JuheCar",
    "juhe_plate": "worker.providers.juhe_plate:JuhePlate",
}


def names() -> list[str]:
    return list(PROVIDERS)


@cache
def provider_class(name: str) -> type[Provider]:
    try:
        path = PROVIDERS[name]
    except KeyError:
        raise ConfigError(f"unknown provider {name!r} (known: {', '.join(PROVIDERS)})") from None
    module_name, _, attr = path.partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), attr)
    return cls


def get_provider(name: str, settings: Settings | None = None) -> Provider:
    """A provider instance bound to its settings block."""
    settings = settings or get_settings()
    provider = provider_class(name)(settings.provider(name))  # type: ignore[call-arg]
    # Protocols with data members can't be issubclass()-checked; check the instance.
    if not isinstance(provider, Provider):
        raise TypeError(f"{PROVIDERS[name]} does not satisfy the Provider protocol")
    return provider
