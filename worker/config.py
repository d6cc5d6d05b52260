"""The settings vrec itself has, read from the environment (prefix ``VREC_``, nested
delimiter ``__``) or ``.env``; and the base of every provider's settings block.

Each provider declares its own block (a :class:`ProviderSettings` subclass, in its adapter
module) and :mod:`worker.settings` assembles the full settings class from the registry,
so that a vendor's settings are named in its own module only. Read settings through
:func:`worker.settings.get_settings`. Per-provider settings follow one pattern,
``VREC_<PROVIDER>__<FIELD>``::

    VREC_TENCENT_VEHICLE_LICENSE__SECRET_ID=AKID...
    VREC_TENCENT_VEHICLE_LICENSE__RATE=10
    VREC_JUHE_CAR__KEY=...

Credentials are ``SecretStr``: they print as ``**********`` and reach the wire only
inside an adapter's signing code. The simulator reads the very same settings, so one
environment configures both sides of a loopback test.
"""

from __future__ import annotations

import typing
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# How an image larger than a vendor's limits is shrunk (worker/imaging/fit.py): "fast"
# accepts a decode-time scale landing up to ~30% below the allowed side, "exact" gives the
# vendor's full allowed size.
FitMode = Literal["fast", "exact"]

# Pillow's own pixel cap (Image.MAX_IMAGE_PIXELS): the largest image vrec decodes at all.
PILLOW_PIXEL_CAP = 89_478_485


class ProviderSettings(BaseModel):
    """What every provider has: where it lives, how fast and how long we may call it."""

    base_url: str
    rate: float | None = Field(
        default=None, gt=0, description="requests/s for all workers; None: the provider default"
    )
    timeout: float = Field(default=30.0, gt=0, description="seconds for one vendor call")
    max_in_flight: int | None = Field(
        default=None, gt=0, description="optional cap on calls in flight per process"
    )
    fit: FitMode | None = Field(
        default=None, description="image fitting, fast or exact; None: the provider default"
    )


def secret_fields(model: type[BaseModel]) -> list[str]:
    """The fields of a settings block that hold a credential (``SecretStr``)."""
    return [
        name
        for name, info in model.model_fields.items()
        if SecretStr in (info.annotation, *typing.get_args(info.annotation))
    ]


Fault = Literal["5xx", "timeout", "reset", "malformed", "error200"]


Latency = Literal["uniform", "lognormal"]


class SimulatorSettings(BaseModel):
    """The vendor simulator's knobs (``VREC_SIMULATOR__*``); see the README's "Trying vrec
    against the simulator" for what each does."""

    # Per call: uniform in [low, high] ms, or log-normal with (median, p99) ms: a long tail
    # (p99.9 ~ median x (p99/median)^1.33), capped at latency_max_ms.
    latency: Latency = "uniform"
    latency_ms: tuple[float, float] = (0.0, 0.0)
    latency_max_ms: float = Field(default=60_000.0, ge=0)
    throttle: bool = True  # enforce each vendor's per-second limit
    fault_rate: float = Field(default=0.0, ge=0, le=1)  # share of calls answered by a fault
    # Which faults fault_rate draws from (pydantic copies this default per instance).
    faults: list[Fault] = ["5xx"]
    # Per-vendor calls allowed in any trailing second; unset: the vendor's documented limit.
    limits: dict[str, int] = {}
    # Seeds the latency and fault dice, and which images the two shares below hit.
    seed: int = 0
    # Shares of otherwise good images (decided per image: the same bytes, the same answer)
    # that the vendor reads with a warning or a degraded confidence, or fails to read.
    warning_rate: float = Field(default=0.08, ge=0, le=1)
    failure_rate: float = Field(default=0.04, ge=0, le=1)
    # Per-vendor calls allowed per credential per day (Beijing time); unset: no quota.
    quotas: dict[str, int] = {}
    # Every answer echoes the request's credentials (worker/simulator/echo.py), as some
    # vendors' error messages do: what vrec must never store or print.
    echo_credentials: bool = False

    @model_validator(mode="after")
    def _latency_makes_sense(self) -> SimulatorSettings:
        first, second = self.latency_ms
        if first < 0 or second < first:
            raise ValueError(f"latency_ms needs 0 <= first <= second, not {self.latency_ms}")
        if self.latency == "lognormal" and second > 0 and first <= 0:
            raise ValueError("a lognormal latency needs a median above 0 ms")
        return self


class Settings(BaseSettings):
    """vrec's own settings; the full class adds one field per registered provider."""

    model_config = SettingsConfigDict(
        env_prefix="VREC_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    database_url: str = "sqlite:///vrec.db"
    broker_url: str | None = None  # unset: embedded in-process Celery worker
    redis_url: str | None = None  # shared rate limiter; defaults to a redis broker_url

    # Job lifecycle.
    max_attempts: int = Field(default=5, ge=1)
    # An answer already paid for (same image content, provider and options) is reused by a
    # new job if younger than this; 0 never reuses (`--force` skips it for one batch).
    reuse_max_age_days: float = Field(default=30.0, ge=0)
    lease_seconds: float = Field(default=300.0, gt=0)
    queued_timeout_seconds: float = Field(default=900.0, gt=0)
    backoff_base_seconds: float = Field(default=2.0, gt=0)
    backoff_cap_seconds: float = Field(default=300.0, gt=0)
    circuit_cooldown_seconds: float = Field(default=300.0, gt=0)
    # Dispatch window: rate x this, capped at limiter_max_wait_seconds (worker/dispatch.py).
    window_seconds: float = Field(default=30.0, gt=0)
    chunk_size: int = Field(default=8, ge=1, le=100)  # most job ids per Celery message
    # Connections kept per process. Keep it >= the worker's threads: a smaller pool opens
    # and closes an overflow connection (a new server process on PostgreSQL) per burst.
    db_pool_size: int = Field(default=32, ge=1)
    limiter_max_wait_seconds: float = Field(default=30.0, gt=0)
    limiter_margin: float = Field(default=0.03, ge=0, le=0.5)
    # How often beat looks for schedules whose tick has come (worker/service/schedules.py).
    schedule_check_seconds: float = Field(default=30.0, gt=0)

    # What a process tells about itself: its log lines as text or one JSON object each;
    # the port `vrec worker` serves Prometheus metrics on (unset: none; 0: any free one).
    log_format: Literal["text", "json"] = "text"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)

    # Untrusted input.
    # The most bytes a source may have, file or URL (a larger one is refused, not read).
    source_max_bytes: int = Field(default=20_000_000, gt=0)
    # Roots that links in a folder and paths in a manifest may lead into, beyond the folder
    # or the manifest's folder given (e.g. ["/data/photos"]); none by default.
    source_roots: list[str] = Field(default_factory=list)
    fetch_timeout_seconds: float = Field(default=15.0, gt=0)
    fetch_max_redirects: int = Field(default=3, ge=0)
    fetch_allow_networks: list[str] = Field(default_factory=list)  # e.g. ["127.0.0.0/8"]
    # Pixels being decoded at once in one process, over all its threads (worker/imaging/
    # budget.py): a thread waits for room, never fails; a larger image runs alone. Decoding
    # holds at most ~8 bytes per pixel, so the default bounds decode memory near 720 MB.
    decode_budget_pixels: int = Field(default=PILLOW_PIXEL_CAP, ge=1)
    # Bytes of prepared requests (fitted, encoded, signed) held at once in one process
    # (worker/request_budget.py): a job claims its provider's largest request before its
    # image is prepared, and waits for room before the limiter, never fails. Calls in
    # flight hold theirs too: one worker alone needs rate x latency x request size.
    request_budget_bytes: int = Field(default=32 * 2**20, ge=1)

    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)

    def provider(self, name: str) -> ProviderSettings:
        """The settings block of provider ``name`` (a registry name); KeyError if there is
        none (settings built without :mod:`worker.settings` have no provider blocks)."""
        value = getattr(self, name, None)
        if not isinstance(value, ProviderSettings):
            raise KeyError(name)
        return value

    @property
    def limiter_redis_url(self) -> str | None:
        """Where the shared limiter lives: VREC_REDIS_URL, else a Redis broker."""
        if self.redis_url:
            return self.redis_url
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None
