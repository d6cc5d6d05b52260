"""Registering a batch: every image under the given sources, one job per image x provider."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from models.batches import create_batch
from models.db import Database
from worker import ingest
from worker.errors import ConfigError
from worker.providers.base import check_options
from worker.providers.registry import provider_class


def job_options(providers: Sequence[str], options: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Each provider's options: an option goes to the providers that know it; one that no
    chosen provider knows is a ConfigError, as is an unknown provider."""
    per_provider: dict[str, dict[str, str]] = {}
    for name in providers:
        cls = provider_class(name)
        mine = {k: v for k, v in options.items() if k in cls.option_choices}
        per_provider[name] = check_options(cls, mine)
    unknown = [
        k for k in options if not any(k in provider_class(p).option_choices for p in providers)
    ]
    if unknown:
        raise ConfigError(f"option {unknown[0]!r} is not known to {', '.join(providers)}")
    return per_provider


def submit(
    db: Database,
    sources: Sequence[str],
    providers: Sequence[str],
    options: Mapping[str, str],
    label: str | None = None,
) -> int:
    """Register every image under ``sources`` and create its jobs; the new batch's id."""
    per_provider = job_options(providers, options)
    with db.transaction() as session:
        batch = create_batch(
            session, ingest.entries(sources), per_provider, label=label, sources=list(sources)
        )
        return batch.id
