"""The environment that points vrec at a running simulator, with credentials both share.

Derived from the registry and each provider's settings block, so no vendor is named here:
:func:`point_at` aims every provider's ``base_url`` at a simulator, keeping each real
path; :func:`made_up_credentials` draws a value for every secret field of every
provider's block (the simulator accepts exactly the credentials it is configured with);
:func:`base_urls` gives every provider's ``BASE_URL`` on the simulator; :func:`help_text`
is what ``vrec simulator`` prints and answers on ``GET /``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from worker.config import Settings, secret_fields
from worker.providers.registry import settings_models


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


def point_at(settings: Settings, base_url: str, providers: Iterable[str] | None = None) -> Settings:
    """A copy of ``settings`` whose providers' base_url use ``base_url``'s scheme and host."""
    target = urlsplit(base_url)
    update: dict[str, Any] = {}
    for name in providers or settings_models():
        block = settings.provider(name)
        url = urlsplit(block.base_url)
        moved = urlunsplit((target.scheme, target.netloc, url.path or "/", url.query, ""))
        update[name] = block.model_copy(update={"base_url": moved})
    return settings.model_copy(update=update)


def base_urls(settings: Settings, simulator_url: str) -> dict[str, str]:
    """``VREC_<PROVIDER>__BASE_URL`` for every provider, on the simulator at ``simulator_url``."""
    pointed = point_at(settings, simulator_url)
    return {
        variable(name, "base_url"): pointed.provider(name).base_url for name in settings_models()
    }


def with_credentials(settings: Settings) -> tuple[Settings, dict[str, str]]:
    """``settings`` with a made-up value for every credential left unset (an Aliyun block
    with an APPCODE or an AppKey is left as it is), and the variables made up."""
    made_up: dict[str, str] = {}
    update: dict[str, Any] = {}
    for name, model in settings_models().items():
        block = settings.provider(name)
        fields = secret_fields(model)
        if any(getattr(block, f) is not None for f in fields):
            continue
        values = {f: secrets.token_hex(16) for f in fields}
        made_up |= {variable(name, f): v for f, v in values.items()}
        update[name] = block.model_copy(update={f: SecretStr(v) for f, v in values.items()})
    return settings.model_copy(update=update), made_up


def help_text(
    settings: Settings,
    simulator_url: str,
    made_up: Mapping[str, str] | None = None,
    *,
    reveal: bool = False,
) -> str:
    """How to point vrec at the simulator at ``simulator_url``: shell lines for every
    ``BASE_URL`` and for the credentials it accepts. ``made_up`` credentials are shown
    only with ``reveal`` (the console of ``vrec simulator``); configured ones never."""
    made_up = made_up or {}
    lines = [
        f"# The vendor simulator at {simulator_url} answers for every provider.",
        "# Point vrec at it (same machine; each provider keeps its real path):",
        *(f"export {key}={value}" for key, value in base_urls(settings, simulator_url).items()),
        "# vrec must send the credentials the simulator accepts:",
    ]
    for name, model in settings_models().items():
        block = settings.provider(name)
        for field in secret_fields(model):
            key = variable(name, field)
            if key in made_up:
                shown = made_up[key] if reveal else "<made up at start: see its console>"
                lines.append(f"export {key}={shown}" if reveal else f"# {key}={shown}")
            elif getattr(block, field) is not None:
                lines.append(f"# {key}: as in the simulator's environment (not shown)")
    lines += [
        "# It checks each vendor's auth, fields and image limits, and answers from what the",
        "# image shows (samples: worker.simulator.samples); knobs are VREC_SIMULATOR__*:",
        "# see the README, 'Trying vrec against the simulator'.",
    ]
    return "\n".join(lines) + "\n"
