"""The provider contract: what an adapter declares and the two pure functions it implements.

An adapter is one module with one class satisfying :class:`Provider`. It never does I/O:
``build_request`` turns a prepared image into a :class:`VendorRequest` (signing included),
``parse_response`` turns the vendor's bytes into a :class:`VendorAnswer` or raises one
:class:`worker.errors.JobError` subclass. :mod:`worker.http` sends the request, so aiohttp
errors are translated in one place, and the simulator can test both halves.

Readings are plain dataclasses whose fields are the columns of the typed tables in
:mod:`models.readings`, so storing one is ``Table(**asdict(reading))``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Protocol, runtime_checkable

from worker.config import FitMode, ProviderSettings
from worker.errors import ConfigError, Outcome
from worker.image_limits import ImageLimits, PreparedImage


@dataclass(frozen=True)
class VendorRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    # multipart parts as (field name, value, filename or None, content type or None)
    multipart: tuple[tuple[str, bytes | str, str | None, str | None], ...] | None = None


@dataclass(frozen=True)
class VendorResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass
class VehicleLicenseReading:
    side: str  # FRONT or BACK
    plate_no: str | None = None
    vehicle_type: str | None = None
    owner: str | None = None
    address: str | None = None
    use_character: str | None = None
    model: str | None = None
    vin: str | None = None
    engine_no: str | None = None
    register_date: date | None = None
    issue_date: date | None = None
    seal: str | None = None
    file_no: str | None = None
    allow_num: str | None = None
    total_mass: str | None = None
    curb_weight: str | None = None
    load_quality: str | None = None
    external_size: str | None = None
    total_quasi_mass: str | None = None
    marks: str | None = None
    record: str | None = None
    fuel_type: str | None = None
    sub_page_code: str | None = None
    warn_codes: list[int] = field(default_factory=list)
    warn_msgs: list[str] = field(default_factory=list)


@dataclass
class PlateReading:
    position: int  # 0-based order in the vendor's answer
    plate_no: str | None = None
    color: str | None = None  # vendor's colour name (蓝, blue, ...)
    color_code: int | None = None
    plate_type: int | None = None
    confidence: float | None = None  # 0..1
    box: list[int] | None = None  # [left, top, right, bottom]
    quad: list[dict[str, int]] | None = None  # four {x, y} corners
    brightness: int | None = None
    direction: int | None = None  # 0 unknown, 1 left, 2 right, 3 up, 4 down


@dataclass
class CarModelCandidate:
    rank: int  # 1 = the vendor's best guess
    name: str | None = None
    year: str | None = None
    score: float | None = None
    baike_url: str | None = None
    image_url: str | None = None
    description: str | None = None
    color: str | None = None  # body colour, same for every candidate of one image


Reading = VehicleLicenseReading | PlateReading | CarModelCandidate


@dataclass
class VendorAnswer:
    """A vendor call that did not fail: ``succeeded`` with readings, or ``no_result``."""

    outcome: Outcome
    raw: Any  # decoded JSON, secrets stripped
    readings: list[Reading] = field(default_factory=list)
    vendor_code: str | None = None
    request_id: str | None = None
    billed: bool = False
    warnings: list[str] = field(default_factory=list)


@runtime_checkable
class Provider(Protocol):
    """One vendor API. Class-level facts, instance-level settings, no I/O.

    ``settings_model`` is the provider's settings block (``VREC_<NAME>__<FIELD>``), declared
    in the adapter's own module; :mod:`worker.settings` adds one field per registered
    provider to the settings class, and an instance is built with its block.
    """

    name: ClassVar[str]
    settings_model: ClassVar[type[ProviderSettings]]
    limits: ClassVar[ImageLimits]
    default_rate: ClassVar[float]  # requests/s when VREC_<P>__RATE is unset
    # How an oversized image is shrunk when VREC_<P>__FIT is unset: "exact" where the vendor
    # reads small text (plates, licences), "fast" where coarse features suffice.
    fit: ClassVar[FitMode]
    option_choices: ClassVar[Mapping[str, tuple[str, ...]]]  # job options and allowed values

    @property
    def settings(self) -> ProviderSettings:
        """This instance's settings block (an instance of ``settings_model``)."""
        ...

    def credential_id(self) -> str:
        """A non-secret id of the credential in use (rate limits are per credential)."""
        ...

    def require_credentials(self) -> None:
        """ConfigError naming the variables to set if the credentials are missing (an
        empty value is missing too): checked before a batch is registered."""
        ...

    def build_request(self, image: PreparedImage, options: Mapping[str, str]) -> VendorRequest:
        """The exact HTTP request of the vendor's doc, signed. Raises ConfigError."""
        ...

    def parse_response(self, response: VendorResponse) -> VendorAnswer:
        """Map the vendor's answer to one outcome; raise a JobError for failures."""
        ...


class HasOptions(Protocol):
    """What :func:`check_options` reads of a provider (its class or an instance)."""

    @property
    def name(self) -> str: ...

    @property
    def option_choices(self) -> Mapping[str, tuple[str, ...]]: ...


def check_options(provider: HasOptions, options: Mapping[str, str]) -> dict[str, str]:
    """Validate job options against ``option_choices``; values are normalised to upper case."""
    checked: dict[str, str] = {}
    for key, value in options.items():
        choices = provider.option_choices.get(key)
        if choices is None:
            known = ", ".join(sorted(provider.option_choices)) or "none"
            raise ConfigError(f"{provider.name}: unknown option {key!r} (known: {known})")
        if value.upper() not in choices:
            raise ConfigError(
                f"{provider.name}: option {key}={value!r} not one of {', '.join(choices)}"
            )
        checked[key] = value.upper()
    return checked


def rate_of(provider: Provider) -> float:
    """The provider's effective rate: its setting, else its documented default."""
    return provider.settings.rate or provider.default_rate


def fit_of(provider: Provider) -> FitMode:
    """The provider's image fitting: its setting, else its class default."""
    return provider.settings.fit or provider.fit
