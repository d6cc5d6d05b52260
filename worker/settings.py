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

import difflib
import json
from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any

from pydantic import BaseModel, Field, ValidationError, create_model

from worker.config import Settings, secret_fields
from worker.errors import SettingsInvalid
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
    """The settings of this process's environment; :class:`SettingsInvalid` naming the
    first variable that does not parse."""
    try:
        return settings_class()()
    except ValidationError as exc:
        raise SettingsInvalid(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """One line for the first invalid setting: the variable, its value (never a
    credential's) and what pydantic expected."""
    error = exc.errors()[0]
    path = [str(part) for part in error["loc"]]
    variable = "VREC_" + "__".join(path).upper()
    secret = path[-1] in _secret_names()
    value = "***" if secret else repr(error.get("input"))
    expected = str(error["msg"]).removeprefix("Input should be ").removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{variable}={value} is not valid: expected {expected}{more}"


@cache
def _secret_names() -> frozenset[str]:
    return frozenset(f for model in settings_models().values() for f in secret_fields(model))


def known_variables() -> list[str]:
    """Every VREC_ variable a setting reads (nested ones with ``__``)."""
    names: list[str] = []

    def walk(prefix: str, model: type[BaseModel]) -> None:
        for field, info in model.model_fields.items():
            name = f"{prefix}{field.upper()}"
            kind = info.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                walk(name + "__", kind)
            else:
                names.append(name)

    walk("VREC_", settings_class())
    return names


def unknown_variables(env: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """VREC_ variables of ``env`` that no setting reads, each with the closest real one
    (a typo such as VREC_JUHE_CAR_KEY for VREC_JUHE_CAR__KEY is silent otherwise).
    VREC_TEST_* and VREC_BENCH_* belong to the tests and benchmarks."""
    known = known_variables()
    out: list[tuple[str, str | None]] = []
    for name in sorted(env):
        if not name.startswith("VREC_") or name.startswith(("VREC_TEST_", "VREC_BENCH_")):
            continue
        if name in known or name == "VREC_DEBUG":
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        out.append((name, close[0] if close else None))
    return out


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
