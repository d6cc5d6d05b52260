"""One contract, every provider: each adapter against its simulator over loopback reaches
all six outcomes of design.md by the same generic means, and leaks no secret doing so.

Every transport fault of :mod:`worker.simulator.faults` (5xx, timeout, reset, malformed,
error200), injected both by the simulator's settings and by an image's directive, is a
transient, retryable, unbilled error of its own class; error200 carries the vendor's own
internal-error code (each simulator's ``internal_error_code``).

Vendor-specific code tables are tested per provider in the neighbouring modules; here only
mechanisms every vendor has are used: an image every vendor reads (a car with its plate
beside a licence page), one none reads (a flat colour), an empty answer, undecodable
bytes, more calls than the vendor's per-second limit, transport faults, the wrong
credentials, and a daily quota running out.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import secrets
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.support.services import EXACT_SIMULATOR
from tests.support.vendors import call
from worker.config import Settings
from worker.errors import (
    BadResponse,
    ConnectionFailed,
    JobError,
    Outcome,
    ServerError,
    VendorTimeout,
)
from worker.image_limits import PreparedImage
from worker.providers.base import Provider, VendorAnswer
from worker.providers.registry import get_provider, names
from worker.settings import build_settings, get_settings
from worker.simulator.directives import make_image
from worker.simulator.environment import made_up_credentials
from worker.simulator.faults import FAULTS
from worker.simulator.samples import everything
from worker.simulator.server import load_sim, point_at, run_simulator

# Variants with other request shapes or auth schemes, where the provider has them.
# "random" values are drawn afresh for each settings object, like made_up_credentials().
RANDOM = "random"
VARIANTS: dict[str, dict[str, str]] = {
    "juhe_plate": {"VREC_JUHE_PLATE__MODE": "multipart"},
    "aliyun_plate": {
        "VREC_ALIYUN_PLATE__APPCODE": "",  # unset: the gateway signature is used instead
        "VREC_ALIYUN_PLATE__APP_KEY": RANDOM,
        "VREC_ALIYUN_PLATE__APP_SECRET": RANDOM,
    },
}
CASES: list[tuple[str, dict[str, str]]] = [(name, {}) for name in names()]
CASES += [(name, env) for name, env in VARIANTS.items() if name in names()]
LIMIT = 2  # the simulator's per-second limit in this test

# The error each transport fault must become.
FAULT_ERRORS: dict[str, type[JobError]] = {
    "5xx": ServerError,
    "timeout": VendorTimeout,
    "reset": ConnectionFailed,
    "malformed": BadResponse,
    "error200": ServerError,
}
TIMEOUT = 5.0  # the client's timeout for one call
FAULT_TIMEOUT = 0.5  # the client's timeout with faults: "timeout" answers far later
WAYS = ("directive", "settings")  # an image's {"fault": ...}, the simulator's fault_rate


def _settings(monkeypatch: pytest.MonkeyPatch, extra: Mapping[str, str]) -> Settings:
    for key, value in {**made_up_credentials(), **EXACT_SIMULATOR, **extra}.items():
        if value == RANDOM:
            monkeypatch.setenv(key, secrets.token_hex(12))
        elif value:
            monkeypatch.setenv(key, value)
        else:
            monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    return get_settings()


def _secrets(settings: Settings, name: str) -> list[str]:
    block = settings.provider(name).model_dump()
    return [v.get_secret_value() for v in block.values() if hasattr(v, "get_secret_value")]


def _with_simulator(settings: Settings, **knobs: Any) -> Settings:
    """A copy of ``settings`` with some of its simulator's knobs changed."""
    return settings.model_copy(update={"simulator": settings.simulator.model_copy(update=knobs)})


def _assert_no_secret(
    name: str, results: list[VendorAnswer | JobError], secrets: list[str]
) -> None:
    """Nothing a vendor call produced carries a credential: messages, raw answers, codes."""
    for result in results:
        text = json.dumps(result.raw, ensure_ascii=False, default=str)
        if isinstance(result, JobError):
            text += str(result) + repr(result.args) + str(result.vendor_code)
        for secret in secrets:
            assert secret not in text, f"{name} leaks a credential"


def _image(data: bytes) -> PreparedImage:
    with Image.open(io.BytesIO(data)) as im:
        fmt, (w, h) = im.format or "PNG", im.size
    return PreparedImage(data, base64.b64encode(data), fmt, w, h, transformed=False)


def _garbage() -> PreparedImage:
    data = b"definitely not an image, but valid base64 once encoded " * 20
    return PreparedImage(data, base64.b64encode(data), "JPEG", 640, 480, transformed=False)


def _outcome(result: VendorAnswer | JobError) -> Outcome:
    return result.outcome


IDS = [
    name + "".join(f"-{k.split('__')[-1].lower()}" for k in env if env[k]) for name, env in CASES
]


@pytest.fixture(params=CASES, ids=IDS)
def case(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """(provider name, settings, other settings alike but for fresh random credentials)."""
    name, extra = request.param
    settings = _settings(monkeypatch, extra)
    return name, settings, _settings(monkeypatch, extra)


def test_six_outcomes(case: tuple[str, Settings, Settings]) -> None:
    name, settings, wrong = case
    # A second simulator with a low per-second limit takes the burst; the first keeps the
    # vendor's own limit, which six calls in a row stay under.
    limited = _with_simulator(settings, limits={name: LIMIT})

    async def scenario() -> dict[str, list[VendorAnswer | JobError]]:
        async with (
            run_simulator(settings, providers=[name]) as (url, sim),
            run_simulator(limited, providers=[name]) as (limited_url, limited_sim),
            aiohttp.ClientSession() as session,
        ):
            provider = get_provider(name, point_at(settings, url, [name]))
            impostor = get_provider(name, point_at(wrong, url, [name]))
            seen: dict[str, list[VendorAnswer | JobError]] = {}

            async def one(label: str, p: Provider, image: PreparedImage) -> None:
                seen[label] = [await call(session, p, image, timeout=TIMEOUT)]

            await one("succeeded", provider, _image(everything(7)))
            await one("no_result", provider, _image(make_image()))
            await one("empty", provider, _image(make_image({"empty": True})))
            await one("invalid_image", provider, _garbage())
            await one("5xx", provider, _image(make_image({"fault": "5xx"})))
            await one("error200", provider, _image(make_image({"fault": "error200"})))
            await one("provider_unavailable", impostor, _image(everything(8)))
            assert sim.snapshot()[name]["throttled"] == 0

            hurried = get_provider(name, point_at(limited, limited_url, [name]))
            images = [_image(everything(i, (800, 350))) for i in range(3 * LIMIT)]
            burst = await asyncio.gather(
                *(call(session, hurried, im, timeout=TIMEOUT) for im in images)
            )
            seen["burst"] = list(burst)
            assert limited_sim.snapshot()[name]["throttled"] >= 1
            return seen

    seen = asyncio.run(scenario())

    succeeded = seen["succeeded"][0]
    assert isinstance(succeeded, VendorAnswer), succeeded
    assert succeeded.outcome is Outcome.SUCCEEDED
    assert succeeded.readings
    assert succeeded.billed
    assert _outcome(seen["no_result"][0]) is Outcome.NO_RESULT
    assert _outcome(seen["empty"][0]) is Outcome.NO_RESULT
    assert _outcome(seen["invalid_image"][0]) is Outcome.INVALID_IMAGE
    assert _outcome(seen["5xx"][0]) is Outcome.TRANSIENT
    assert _outcome(seen["error200"][0]) is Outcome.TRANSIENT
    assert _outcome(seen["provider_unavailable"][0]) is Outcome.PROVIDER_UNAVAILABLE
    burst = [_outcome(r) for r in seen["burst"]]
    assert Outcome.RATE_LIMITED in burst
    assert set(burst) <= {Outcome.SUCCEEDED, Outcome.RATE_LIMITED}

    results_all = [result for results in seen.values() for result in results]
    _assert_no_secret(name, results_all, _secrets(settings, name) + _secrets(wrong, name))


def test_transport_faults_are_transient(case: tuple[str, Settings, Settings]) -> None:
    """Each fault, by an image's directive and by the simulator's settings."""
    name, settings, _ = case
    assert set(FAULT_ERRORS) == set(FAULTS)
    # Calls in a quick row: the vendor's per-second limit is not what is tested here.
    settings = _with_simulator(settings, throttle=False)

    async def scenario() -> dict[tuple[str, str], VendorAnswer | JobError]:
        # One simulator per way, side by side, so the two timeouts are waited out together.
        async with (
            run_simulator(settings, providers=[name]) as (url, _),
            run_simulator(settings, providers=[name]) as (faulty_url, faulty),
            aiohttp.ClientSession() as session,
        ):
            seen: dict[tuple[str, str], VendorAnswer | JobError] = {}

            async def by_directive() -> None:
                provider = get_provider(name, point_at(settings, url, [name]))
                images = [_image(make_image({"fault": fault})) for fault in FAULTS]
                calls = (call(session, provider, image, timeout=FAULT_TIMEOUT) for image in images)
                for fault, result in zip(FAULTS, await asyncio.gather(*calls), strict=True):
                    seen[fault, "directive"] = result

            async def by_settings() -> None:
                # The simulator reads its knobs on every call: each fault in turn, at rate 1.
                provider = get_provider(name, point_at(settings, faulty_url, [name]))
                for fault in FAULTS:
                    faulty.settings = _with_simulator(settings, fault_rate=1.0, faults=[fault])
                    image = _image(make_image())
                    seen[fault, "settings"] = await call(
                        session, provider, image, timeout=FAULT_TIMEOUT
                    )

            await asyncio.gather(by_directive(), by_settings())
            return seen

    seen = asyncio.run(scenario())

    def view(result: VendorAnswer | JobError) -> tuple[Any, ...]:
        retryable = getattr(result, "retryable", None)
        return type(result), result.outcome, retryable, result.billed, result.vendor_code

    # Only error200 is the vendor's own answer: the others carry no vendor code.
    internal = load_sim(name, settings).internal_error_code
    assert {key: view(result) for key, result in seen.items()} == {
        (fault, way): (
            FAULT_ERRORS[fault],
            Outcome.TRANSIENT,
            True,
            False,
            internal if fault == "error200" else None,
        )
        for fault in FAULTS
        for way in WAYS
    }
    # A transport failure keeps the exception it was translated from (raise ... from).
    for fault in ("timeout", "reset", "malformed"):
        assert all(seen[fault, way].__cause__ is not None for way in WAYS), fault  # type: ignore[union-attr]
    _assert_no_secret(name, list(seen.values()), _secrets(settings, name))


def test_every_provider_is_registered_with_its_simulator() -> None:
    assert set(names()) >= {"tencent_vehicle_license"}
    for name in names():
        provider = get_provider(name, build_settings())
        assert provider.name == name
        assert provider.limits.max_b64_bytes > 0
        assert provider.default_rate > 0


def test_daily_quota_runs_out(case: tuple[str, Settings, Settings]) -> None:
    """Past its credential's daily quota a vendor answers its own "out of calls" code:
    provider_unavailable (the circuit opens), not billed; the calls before it are read."""
    name, settings, _ = case
    quota = 2
    settings = _with_simulator(settings, quotas={name: quota})

    async def scenario() -> tuple[list[VendorAnswer | JobError], dict[str, Any]]:
        async with (
            run_simulator(settings, providers=[name]) as (url, sim),
            aiohttp.ClientSession() as session,
        ):
            provider = get_provider(name, point_at(settings, url, [name]))
            results = [
                await call(session, provider, _image(everything(i)), timeout=TIMEOUT)
                for i in range(quota + 2)
            ]
            return results, sim.snapshot()[name]

    results, stats = asyncio.run(scenario())
    assert [r.outcome for r in results] == [Outcome.SUCCEEDED] * quota + [
        Outcome.PROVIDER_UNAVAILABLE
    ] * 2
    assert [r.billed for r in results] == [True] * quota + [False] * 2
    assert stats["over_quota"] == 2
    _assert_no_secret(name, results, _secrets(settings, name))
