"""The environment that points vrec at a running simulator, with credentials both share.

Derived from the registry, each provider's settings block and :func:`point_at`, so no
vendor is named here: :func:`made_up_credentials` draws a value for every secret field of
every provider's block (the simulator accepts exactly the credentials it is configured
with), and :func:`base_urls` gives every provider's ``BASE_URL`` on the simulator, keeping
each vendor's real path.
"""

from __future__ import annotations

import secrets

from worker.config import Settings, secret_fields
from worker.providers.registry import settings_models
from worker.simulator.server import point_at


def variable(provider: str, field: str) -> str:
    """The environment variable of one field of a provider's block."""
    return f"VREC_{provider.upper()}__{field.upper()}"


def made_up_credentials() -> dict[str, str]:
    """A fresh random value for every credential of every registered provider."""
    return {
        variable(name, field): secrets.token_hex(16)
        for name, model in settings_models().items()
        for field in secret_fields(model)
    }


def base_urls(settings: Settings, simulator_url: str) -> dict[str, str]:
    """``VREC_<PROVIDER>__BASE_URL`` for every provider, on the simulator at ``simulator_url``."""
    pointed = point_at(settings, simulator_url)
    return {
        variable(name, "base_url"): pointed.provider(name).base_url for name in settings_models()
    }
