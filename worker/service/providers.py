"""What each provider is set up as: rate, image limits, credentials (set or not, never
their values), circuit, base URL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import SecretStr

from models import reports
from models.core import ProviderState
from models.db import Database
from worker.config import Settings, secret_fields
from worker.image_limits import ImageLimits
from worker.providers.base import rate_of
from worker.providers.registry import get_provider, names


@dataclass
class ProviderSetup:
    name: str
    rate: float
    limits: ImageLimits
    credentials: dict[str, bool]  # each secret setting: set or not
    base_url: str
    circuit: ProviderState | None


def providers(db: Database | None, settings: Settings) -> list[ProviderSetup]:
    """Every registered provider; circuits only when a database is given."""
    circuits: dict[str, ProviderState] = {}
    if db is not None:
        with db.transaction() as session:
            circuits = {s.provider: s for s in reports.open_circuits(session, datetime.now(UTC))}
    out = []
    for name in names():
        provider = get_provider(name, settings)
        block = provider.settings
        credentials = {}
        for field in secret_fields(type(block)):
            value = getattr(block, field)
            credentials[field] = isinstance(value, SecretStr) and bool(value.get_secret_value())
        out.append(
            ProviderSetup(
                name=name,
                rate=rate_of(provider),
                limits=provider.limits,
                credentials=credentials,
                base_url=block.base_url,
                circuit=circuits.get(name),
            )
        )
    return out
