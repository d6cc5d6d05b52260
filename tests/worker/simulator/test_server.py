"""The simulator server: stats, per-second limits, latency, threads; directives and synth."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import random
import re
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from PIL import Image, ImageDraw

from tests.support.vendors import Loopback, Vendor, fake_secret, prepared, provider_block
from worker.config import SimulatorSettings
from worker.errors import RateLimited
from worker.providers import tencent_sign
from worker.providers.base import VendorAnswer
from worker.providers.tencent_vehicle_license import TencentVehicleLicenseSettings
from worker.simulator.directives import Directive, make_image, read_directive, with_directive
from worker.simulator.samples import licence_page, vehicle_photo
from worker.simulator.server import (
    Quotas,
    SimulatorThread,
    busiest_window,
    draw_latency,
    point_at,
)
from worker.simulator.synth import PLATE_LETTERS, PROVINCES, Synth, vin_check_digit

NAME = "tencent_vehicle_license"
SECRET_ID = fake_secret(NAME, "secret_id")
SECRET_KEY = fake_secret(NAME, "secret_key")
pytestmark = pytest.mark.vendor(NAME)


async def _stats(
    session: aiohttp.ClientSession, base_url: str, *, times: bool = False
) -> dict[str, Any]:
    """The counters (GET /__sim/stats); the arrival times only when ``times``."""
    query = "?arrivals=1" if times else ""
    async with session.get(f"{base_url}/__sim/stats{query}") as response:
        stats: dict[str, Any] = (await response.json())[NAME]
    if not times:
        for key in ("first_arrival", "last_arrival"):
            stats.pop(key)
    return stats


async def _spaced(lb: Loopback, n: int, spacing: float) -> list[Any]:
    """``n`` calls leaving ``spacing`` seconds apart on an absolute schedule."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(i: int) -> Any:
        await asyncio.sleep(max(0.0, start + i * spacing - loop.time()))
        return await lb.call(prepared())

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def test_stats_count_calls_and_reset(vendor: Vendor) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with vendor.loopback(vendor.settings(throttle=False)) as lb:
            for _ in range(4):
                await lb.call(prepared())
            before = await _stats(lb.session, lb.base_url)
            async with lb.session.post(f"{lb.base_url}/__sim/reset") as response:
                assert response.status == 200
            return before, await _stats(lb.session, lb.base_url)

    before, after = asyncio.run(scenario())
    counts = {
        "calls": 4,
        "admitted": 4,
        "throttled": 0,
        "faults": 0,
        "over_quota": 0,
        "max_per_second": 4,
    }
    assert before == counts
    assert after == dict.fromkeys(counts, 0)


def test_max_per_second_is_a_sliding_window_of_arrivals(vendor: Vendor) -> None:
    async def scenario() -> dict[str, Any]:
        async with vendor.loopback(vendor.settings(throttle=False)) as lb:
            await asyncio.gather(*(lb.call(prepared()) for _ in range(3)))
            await asyncio.sleep(1.1)
            await asyncio.gather(*(lb.call(prepared()) for _ in range(2)))
            return await _stats(lb.session, lb.base_url)

    assert asyncio.run(scenario()) == {
        "calls": 5,
        "admitted": 5,
        "throttled": 0,
        "faults": 0,
        "over_quota": 0,
        "max_per_second": 3,
    }


def test_throttling_per_trailing_second(vendor: Vendor) -> None:
    settings = vendor.settings(limits={NAME: 3})

    async def scenario() -> tuple[list[Any], list[Any], dict[str, Any]]:
        async with vendor.loopback(settings) as lb:
            burst = await asyncio.gather(*(lb.call(prepared()) for _ in range(5)))
            await asyncio.sleep(1.05)  # the admitted three have left the window
            later = await asyncio.gather(*(lb.call(prepared()) for _ in range(3)))
            return list(burst), list(later), await _stats(lb.session, lb.base_url)

    burst, later, stats = asyncio.run(scenario())
    assert sum(isinstance(r, RateLimited) for r in burst) == 2
    assert all(isinstance(r, VendorAnswer) for r in later)
    assert stats == {
        "calls": 8,
        "admitted": 6,
        "throttled": 2,
        "faults": 0,
        "over_quota": 0,
        "max_per_second": 5,
    }


def test_limit_is_decided_at_arrival_whatever_the_latency(vendor: Vendor) -> None:
    """Calls arriving evenly at the limit are never throttled, however their random
    latencies reorder the answers: the vendor counts arrivals, which the client controls."""
    limit, n = 10, 25
    spacing = 1.1 / limit  # N + 1 arrivals span 1.1 s: 100 ms for the event loop's jitter
    settings = vendor.settings(limits={NAME: limit}, latency_ms=(300.0, 1500.0))

    async def scenario() -> tuple[list[Any], dict[str, Any], float, float]:
        async with vendor.loopback(settings) as lb:
            before = time.time()
            results = await _spaced(lb, n, spacing)
            return results, await _stats(lb.session, lb.base_url, times=True), before, time.time()

    results, stats, before, after = asyncio.run(scenario())
    assert all(isinstance(r, VendorAnswer) for r in results)
    assert (stats["calls"], stats["admitted"], stats["throttled"]) == (n, n, 0)
    assert stats["max_per_second"] <= limit
    arrivals = stats["arrivals"]
    assert len(arrivals) == n
    assert arrivals == sorted(arrivals)
    assert (stats["first_arrival"], stats["last_arrival"]) == (arrivals[0], arrivals[-1])
    assert before <= arrivals[0]  # wall clock: comparable across processes
    assert arrivals[-1] <= after
    # A benchmark in another process computes its achieved rate from these alone.
    assert stats["last_arrival"] - stats["first_arrival"] >= (n - 1) * spacing - 0.05


def test_one_arrival_over_the_limit_is_the_one_throttled(vendor: Vendor) -> None:
    """N + 1 arrivals within a second: the (N + 1)-th arrival is refused, whichever answer
    its latency would have made come first; the refusal is answered after the latency."""
    limit = 3
    settings = vendor.settings(limits={NAME: limit}, latency_ms=(300.0, 1500.0))

    async def scenario() -> tuple[list[Any], dict[str, Any], float]:
        async with vendor.loopback(settings) as lb:
            start = time.perf_counter()
            results = await _spaced(lb, limit + 1, 0.1)
            return results, await _stats(lb.session, lb.base_url), time.perf_counter() - start

    results, stats, elapsed = asyncio.run(scenario())
    assert [isinstance(r, RateLimited) for r in results] == [False] * limit + [True]
    assert all(isinstance(r, VendorAnswer) for r in results[:limit])
    assert stats == {
        "calls": 4,
        "admitted": 3,
        "throttled": 1,
        "faults": 0,
        "over_quota": 0,
        "max_per_second": 4,
    }
    assert elapsed >= 0.3 + 0.3  # the refused call left at 0.3 s and still took the latency


def test_default_limit_is_the_vendors_and_can_be_disabled(vendor: Vendor) -> None:
    async def burst(throttle: bool) -> int:
        async with vendor.loopback(vendor.settings(throttle=throttle)) as lb:
            await asyncio.gather(*(lb.call(prepared()) for _ in range(12)))
            return int((await _stats(lb.session, lb.base_url))["throttled"])

    assert asyncio.run(burst(True)) == 2  # Tencent: 10 per second
    assert asyncio.run(burst(False)) == 0


def test_faults_are_counted_and_latency_is_applied(vendor: Vendor) -> None:
    settings = vendor.settings(fault_rate=1.0, faults=["5xx"], latency_ms=(150.0, 150.0))

    async def scenario() -> tuple[float, dict[str, Any]]:
        async with vendor.loopback(settings) as lb:
            start = time.perf_counter()
            await lb.call(prepared())
            return time.perf_counter() - start, await _stats(lb.session, lb.base_url)

    elapsed, stats = asyncio.run(scenario())
    assert elapsed >= 0.15
    assert stats["faults"] == 1


def test_simulator_thread_for_sync_code(vendor: Vendor) -> None:
    with SimulatorThread(vendor.settings(), providers=[NAME]) as thread:
        assert thread.base_url.startswith("http://127.0.0.1:")
        assert thread.simulator is not None
        simulator = thread.simulator

        async def call() -> Any:
            async with aiohttp.ClientSession() as session:
                settings = point_at(vendor.settings(), thread.base_url, [NAME])
                return await Loopback(thread.base_url, simulator, session, settings, vendor).call(
                    prepared()
                )

        assert isinstance(asyncio.run(call()), VendorAnswer)
        assert simulator.snapshot()[NAME]["calls"] == 1


def test_point_at_keeps_paths(vendor: Vendor) -> None:
    settings = point_at(vendor.settings(), "http://127.0.0.1:9999")
    block = provider_block(settings, TencentVehicleLicenseSettings)
    assert block.base_url == "http://127.0.0.1:9999/"
    assert block.secret_key is not None


# --- the Tencent simulator's own checks, with hand-made requests -----------------------


def _signed(
    body: bytes,
    *,
    host: str,
    headers: dict[str, str] | None = None,
    secret_id: str = SECRET_ID,
    content_type: str = "application/json; charset=utf-8",
) -> dict[str, str]:
    timestamp = int(time.time())
    signed = tencent_sign.sign(
        secret_id=secret_id,
        secret_key=SECRET_KEY,
        service="ocr",
        timestamp=timestamp,
        headers=(("Content-Type", content_type), ("Host", host)),
        payload=body,
    )
    return {
        "Authorization": signed.authorization,
        "Content-Type": content_type,
        "Host": host,
        "X-TC-Action": "VehicleLicenseOCR",
        "X-TC-Version": "2018-11-19",
        "X-TC-Region": "ap-shanghai",
        "X-TC-Timestamp": str(timestamp),
        **(headers or {}),
    }


PNG_B64 = base64.b64encode(make_image()).decode()
LICENCE_B64 = base64.b64encode(licence_page("FRONT", 4)).decode()
CASES: list[tuple[str, Any, dict[str, str], str]] = [
    ("bad action", {"ImageBase64": PNG_B64}, {"X-TC-Action": "Nope"}, "InvalidAction"),
    ("bad version", {"ImageBase64": PNG_B64}, {"X-TC-Version": "2017-01-01"}, "NoSuchVersion"),
    ("bad region", {"ImageBase64": PNG_B64}, {"X-TC-Region": "eu-moon"}, "UnsupportedRegion"),
    ("no action", {"ImageBase64": PNG_B64}, {"X-TC-Action": ""}, "MissingParameter"),
    (
        "no authorization",
        {"ImageBase64": PNG_B64},
        {"Authorization": ""},
        "AuthFailure.InvalidAuthorization",
    ),
    (
        "not tc3",
        {"ImageBase64": PNG_B64},
        {"Authorization": "Basic abc"},
        "AuthFailure.InvalidAuthorization",
    ),
    (
        "signed content-type differs",
        {"ImageBase64": PNG_B64},
        {"Content-Type": "application/json"},
        "AuthFailure.SignatureFailure",
    ),
    ("not json", b"{not json", {}, "InvalidParameter"),
    ("not an object", [1, 2], {}, "InvalidParameter"),
    ("unknown parameter", {"ImageBase64": PNG_B64, "Foo": "1"}, {}, "UnknownParameter"),
    ("wrong type", {"ImageBase64": 12}, {}, "InvalidParameter"),
    ("no image", {"CardSide": "FRONT"}, {}, "FailedOperation.EmptyImageError"),
    ("url", {"ImageUrl": "https://xx/a.jpg"}, {}, "FailedOperation.DownLoadError"),
    ("too large", {"ImageBase64": "A" * 7_000_004}, {}, "LimitExceeded.TooLargeFileError"),
    ("bad base64", {"ImageBase64": "@@@@"}, {}, "FailedOperation.ImageDecodeFailed"),
    (
        "not an image",
        {"ImageBase64": base64.b64encode(b"hello").decode()},
        {},
        "FailedOperation.ImageDecodeFailed",
    ),
    (
        "bad card side",
        {"ImageBase64": PNG_B64, "CardSide": "TOP"},
        {},
        "InvalidParameterValue.InvalidParameterValueLimit",
    ),
]


@pytest.mark.parametrize(("case", "params", "headers", "code"), CASES, ids=[c[0] for c in CASES])
def test_tencent_sim_refusals(
    vendor: Vendor, case: str, params: Any, headers: dict[str, str], code: str
) -> None:
    body = params if isinstance(params, bytes) else json.dumps(params).encode()

    async def scenario() -> tuple[int, str, dict[str, Any]]:
        async with vendor.loopback(vendor.settings(throttle=False)) as lb:
            host = lb.base_url.removeprefix("http://")
            sent = _signed(body, host=host)
            if "Content-Type" in headers:  # sign one type, send another
                sent["Content-Type"] = headers["Content-Type"]
            else:
                sent.update(headers)
            data = io.BytesIO(body)  # aiohttp warns about raw bytes over 1 MiB
            async with lb.session.post(f"{lb.base_url}/", data=data, headers=sent) as response:
                return response.status, response.headers["Content-Type"], await response.json()

    status, content_type, answer = asyncio.run(scenario())
    assert status == 200
    assert content_type == "application/json"  # exactly: the SDK reads errors only then
    assert answer["Response"]["Error"]["Code"] == code, case
    assert re.fullmatch(r"[0-9a-f-]{36}", answer["Response"]["RequestId"])


def test_tencent_sim_accepts_extra_signed_headers(vendor: Vendor) -> None:
    """The server side takes any SignedHeaders list, as Tencent's does."""
    body = json.dumps({"ImageBase64": LICENCE_B64}).encode()

    async def scenario() -> dict[str, Any]:
        async with vendor.loopback() as lb:
            host = lb.base_url.removeprefix("http://")
            timestamp = int(time.time())
            ct = "application/json"
            signed = tencent_sign.sign(
                secret_id=SECRET_ID,
                secret_key=SECRET_KEY,
                service="ocr",
                timestamp=timestamp,
                headers=(
                    ("Content-Type", ct),
                    ("Host", host),
                    ("X-TC-Action", "VehicleLicenseOCR"),
                ),
                payload=body,
            )
            headers = _signed(body, host=host, content_type=ct)
            headers["Authorization"] = signed.authorization
            headers["X-TC-Timestamp"] = str(timestamp)
            async with lb.session.post(f"{lb.base_url}/", data=body, headers=headers) as response:
                result: dict[str, Any] = await response.json()
                return result

    assert "FrontInfo" in asyncio.run(scenario())["Response"]


# --- directives and synth ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_directive_round_trip(fmt: str) -> None:
    data = make_image({"plate": "粤B12345", "error": 237102, "warn": [-9102], "count": 2}, fmt=fmt)
    directive = read_directive(data)
    assert directive.error == "237102"
    assert directive.warn == (-9102,)
    assert directive.count == 2
    assert directive.fields == {"plate": "粤B12345"}
    with Image.open(io.BytesIO(data)) as image:  # still a valid image
        image.load()
        assert image.format == fmt


def test_no_or_broken_directive_is_empty() -> None:
    assert read_directive(make_image()) == Directive()
    assert read_directive(make_image(fmt="BMP")) == Directive()
    assert read_directive(b"not an image") == Directive()
    image = Image.open(io.BytesIO(make_image({"error": "X", "message": "long enough text"})))
    ImageDraw.Draw(image).rectangle((100, 420, 500, 470), fill=(255, 255, 255))  # scratched
    out = io.BytesIO()
    image.save(out, "PNG")
    assert read_directive(out.getvalue()) == Directive()
    with pytest.raises(ValueError, match="PNG, JPEG or BMP"):
        with_directive(make_image(fmt="GIF"), {"empty": True})
    with pytest.raises(ValueError, match="too small"):
        make_image({"empty": True}, size=(64, 48))


@pytest.mark.parametrize(("scale", "quality"), [(1.0, 90), (0.5, 75), (0.3, 50)])
def test_directive_survives_resizing_and_jpeg(scale: float, quality: int) -> None:
    """What vrec may do to an image before sending it: the directive is still read."""
    data = with_directive(vehicle_photo(2, (900, 600)), {"error": "FailedOperation.ImageBlur"})
    with Image.open(io.BytesIO(data)) as image:
        size = (round(image.width * scale), round(image.height * scale))
        out = io.BytesIO()
        image.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(
            out, "JPEG", quality=quality
        )
    assert read_directive(out.getvalue()).error == "FailedOperation.ImageBlur"


def test_directives_travel_in_the_pixels_only() -> None:
    """No metadata: a JPEG's segments are the plain encoder's, a PNG's chunks critical."""
    jpeg = make_image({"empty": True}, fmt="JPEG")
    assert b"\xff\xfe" not in jpeg[: jpeg.index(b"\xff\xda")]  # no COM segment
    png = make_image({"empty": True})
    assert b"tEXt" not in png
    assert b"iTXt" not in png
    assert read_directive(jpeg).empty
    assert read_directive(png).empty


def test_synth_is_deterministic_and_realistic() -> None:
    a, b, c = Synth(b"one"), Synth(b"one"), Synth(b"two")
    assert [a.plate(), a.vin(), a.name()] == [b.plate(), b.vin(), b.name()]
    assert Synth(b"one").plate() != c.plate() or Synth(b"one").vin() != c.vin()
    for seed in range(200):
        s = Synth(str(seed).encode())
        plate = s.plate()
        assert re.fullmatch(rf"[{PROVINCES}][{PLATE_LETTERS}][0-9{PLATE_LETTERS}]{{5}}", plate)
        vin = s.vin()
        assert re.fullmatch(r"[0-9A-HJ-NPR-Z]{17}", vin)
        assert vin[8] == vin_check_digit(vin)
        left, top, right, bottom = s.box(640, 480)
        assert 0 <= left <= right <= 640
        assert 0 <= top <= bottom <= 480


def test_vin_check_digit_known_value() -> None:
    assert vin_check_digit("1M8GDM9AXKP042788") == "X"  # the classic worked example


def test_busiest_window_counts_as_the_vendor_does() -> None:
    # Half-open (t - 1, t]: calls exactly a second apart never share a window.
    assert busiest_window([0.0, 1.0, 2.0]) == 1
    assert busiest_window([1.5, 0.0, 0.5, 0.99, 1.0]) == 3  # any order
    assert busiest_window([]) == 0


def test_tencent_answers_are_errors_to_the_official_sdk(vendor: Vendor) -> None:
    """tencentcloud-sdk-python raises an answer's error only for Content-Type
    application/json (AbstractClient._check_error): the simulator's answers are that."""
    from types import SimpleNamespace

    from tencentcloud.common.abstract_client import AbstractClient
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
        TencentCloudSDKException,
    )

    body = json.dumps({"ImageBase64": PNG_B64}).encode()

    async def scenario() -> tuple[dict[str, str], bytes]:
        async with vendor.loopback() as lb:
            headers = _signed(body, host=lb.base_url.removeprefix("http://"))
            async with lb.session.post(f"{lb.base_url}/", data=body, headers=headers) as response:
                return dict(response.headers), await response.read()

    headers, content = asyncio.run(scenario())
    with pytest.raises(TencentCloudSDKException) as raised:
        AbstractClient._check_error(None, SimpleNamespace(headers=headers, content=content))
    assert raised.value.code == "FailedOperation.NoVehicleLicenseError"  # a flat colour


def test_tencent_refuses_a_content_type_the_api_does_not_take(vendor: Vendor) -> None:
    body = json.dumps({"ImageBase64": LICENCE_B64}).encode()

    async def scenario() -> dict[str, Any]:
        async with vendor.loopback() as lb:
            host = lb.base_url.removeprefix("http://")
            headers = _signed(body, host=host, content_type="text/plain")
            async with lb.session.post(f"{lb.base_url}/", data=body, headers=headers) as response:
                answer: dict[str, Any] = await response.json()
                return answer

    error = asyncio.run(scenario())["Response"]["Error"]
    assert error["Code"] == "InvalidParameter"
    assert "text/plain" in error["Message"]


def test_help_on_get_names_every_base_url(vendor: Vendor) -> None:
    async def scenario() -> tuple[int, str]:
        async with vendor.loopback() as lb, lb.session.get(f"{lb.base_url}/") as response:
            return response.status, await response.text()

    status, text = asyncio.run(scenario())
    assert status == 200
    assert re.search(
        r"^export VREC_TENCENT_VEHICLE_LICENSE__BASE_URL=http://127\.0\.0\.1:\d+/$", text, re.M
    )
    assert "VREC_TENCENT_VEHICLE_LICENSE__SECRET_KEY: as in the simulator's environment" in text
    assert SECRET_KEY not in text


def test_quotas_count_per_credential_and_start_again_each_beijing_day() -> None:
    now = [datetime(2026, 3, 1, 15, 59, tzinfo=UTC).timestamp()]  # 23:59 in Beijing
    quotas = Quotas(clock=lambda: now[0])
    assert [quotas.spend("p", "key-a", 2) for _ in range(3)] == [True, True, False]
    assert quotas.spend("p", "key-b", 2)  # another credential: its own count
    assert quotas.spend("q", "key-a", 2)  # another vendor
    assert quotas.spend("p", "key-a", None)  # no quota set
    now[0] += 120  # 00:01 in Beijing: a new day
    assert quotas.spend("p", "key-a", 2)


def test_lognormal_latency_has_its_median_and_tail() -> None:
    knobs = SimulatorSettings(latency="lognormal", latency_ms=(400.0, 2000.0))
    rng = random.Random(7)
    draws = sorted(draw_latency(knobs, rng) for _ in range(20_000))
    assert 0.38 < draws[10_000] < 0.42  # the median, in seconds
    assert 1.85 < draws[19_800] < 2.15  # the 99th percentile
    assert draws[-1] > 2.5  # a long tail beyond it
    capped = knobs.model_copy(update={"latency_max_ms": 1000.0})
    assert max(draw_latency(capped, rng) for _ in range(2_000)) == 1.0
    uniform = SimulatorSettings(latency_ms=(300.0, 1500.0))
    assert all(0.3 <= draw_latency(uniform, rng) <= 1.5 for _ in range(1_000))
    with pytest.raises(ValueError, match="latency_ms"):
        SimulatorSettings(latency_ms=(500.0, 100.0))


def test_vrec_simulator_prints_the_environment_that_points_vrec_at_it(tmp_path: Any) -> None:
    """The real command, in its own process: the lines it prints are the lines vrec needs
    (every BASE_URL, made-up credentials it then accepts), GET / answers the same help
    without the credentials, and a vendor call made with the printed values is accepted."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VREC_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "simulator", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(19)]
        printed = dict(
            line.removeprefix("export ").strip().split("=", 1)
            for line in lines
            if line.startswith("export ")
        )

        async def scenario() -> tuple[str, Any]:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/") as response:
                    help_text = await response.text()
                key = printed["VREC_TIANAPI_PLATE__KEY"]
                url = printed["VREC_TIANAPI_PLATE__BASE_URL"]
                async with session.post(url, data={"key": key, "img": "x"}) as response:
                    return help_text, await response.json()

        help_text, answer = asyncio.run(scenario())
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert printed["VREC_JUHE_CAR__BASE_URL"] == f"http://127.0.0.1:{port}/carDetect/index"
    assert len(printed["VREC_TENCENT_VEHICLE_LICENSE__SECRET_KEY"]) == 32
    assert answer["code"] == 270  # the key was accepted; "x" is no image
    assert f"export VREC_TENCENT_VEHICLE_LICENSE__BASE_URL=http://127.0.0.1:{port}/" in help_text
    assert printed["VREC_TIANAPI_PLATE__KEY"] not in help_text
