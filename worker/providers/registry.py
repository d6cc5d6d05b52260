"""Provider registry: name -> dotted path of the adapter class (as fsspec's registry).

Adding a vendor is exactly: its adapter module in this package (the adapter class and its
settings block), one line here, its simulator module ``worker.simulator.<name>``, and its
test module. Everything else (settings, the simulator, the demo's made-up credentials)
reads the registry.
"""

from __future__ import annotations

import importlib
from functools import cache

from worker.config import ProviderSettings, Settings
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


def settings_models() -> dict[str, type[ProviderSettings]]:
    """Each registered provider's settings block, by name (imports every adapter)."""
    return {name: provider_class(name).settings_model for name in PROVIDERS}


def get_provider(name: str, settings: Settings) -> Provider:
    """A provider instance bound to its settings block."""
    provider = provider_class(name)(settings.provider(name))  # type: ignore[call-arg]
    # Protocols with data members can't be issubclass()-checked; check the instance.
    if not isinstance(provider, Provider):
        raise TypeError(f"{PROVIDERS[name]} does not satisfy the Provider protocol")
    return provider
