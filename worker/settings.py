"""The full settings class: vrec's own settings plus one block per registered provider.

:class:`worker.config.Settings` holds what vrec itself has; each provider declares its
block in its adapter module (``Provider.settings_model``). This module adds one field per
registry name, so ``VREC_<PROVIDER>__<FIELD>`` reaches that provider's block and nothing
outside the adapter names a vendor's settings.

Read settings through one cached :func:`get_settings`; tests set environment variables
and call ``get_settings.cache_clear()``. :func:`build_settings` builds settings from
values (tests, tools); :func:`settings_from_env` reads a child process's environment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any

from pydantic import Field, create_model

from worker.config import Settings
from worker.providers.registry import settings_models


@cache
def settings_class() -> type[Settings]:
    """:class:`Settings` with a field per registered provider (its settings block)."""
    fields: dict[str, Any] = {
        name: (model, Field(default_factory=model)) for name, model in settings_models().items()
    }
    cls: type[Settings] = create_model("Settings", __base__=Settings, **fields)
    return cls


def build_settings(**values: Any) -> Settings:
    """Settings from ``values`` (provider blocks by name), then the environment as usual."""
    return settings_class()(**values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return settings_class()()


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """The settings a process started with environment ``env`` would read (its VREC_*
    variables, nested on ``__``; JSON for lists, tuples and mappings, as pydantic-settings
    reads them), for a parent that configures children (demo, bench)."""
    data: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith("VREC_"):
            continue
        *path, leaf = key.removeprefix("VREC_").lower().split("__")
        node = data
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = json.loads(value) if value.lstrip()[:1] in ("[", "{") else value
    return settings_class().model_validate(data)
