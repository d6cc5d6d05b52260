"""The Aliyun ocrCars adapter: against its simulator over 127.0.0.1 (both auth modes), and
offline against the doc's examples and every ret_code / gateway message."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest

from tests.support.vendors import Loopback, Vendor, fake_secret, prepared
from worker.errors import (
    BadResponse,
    ConfigError,
    InvalidImage,
    JobError,
    Outcome,
    ProviderUnavailable,
    RateLimited,
    ServerError,
    VendorRejectedImage,
)
from worker.providers.aliyun_codes import GATEWAY_ERRORS, RET_CODES
from worker.providers.base import PlateReading, VendorAnswer
from worker.providers.form import form_body
from worker.simulator import scene
from worker.simulator.directives import make_image
from worker.simulator.samples import plate_of, side_by_side, vehicle_photo

NAME = "aliyun_plate"
APPCODE = "83359fd73fe94948385f570e3c1391aa"  # the doc's, which GATEWAY_OUTCOMES quotes
APP_KEY = fake_secret(NAME, "app_key")
APP_SECRET = fake_secret(NAME, "app_secret")
SIGNED = {"appcode": None}  # AppKey/AppSecret signature instead of APPCODE
pytestmark = pytest.mark.vendor(NAME, appcode=APPCODE)
CAR = vehicle_photo(51, (480, 300))


# --- the contract --------------------------------------------------------------------


def test_class_facts_and_credential_id(vendor: Vendor) -> None:
    provider = vendor.adapter()
    assert provider.name == NAME
    assert provider.limits.formats == frozenset({"JPEG", "PNG", "BMP"})
    assert provider.limits.max_b64_bytes == 4_000_000
    assert provider.limits.min_side == 15
    assert provider.default_rate == 5.0
    assert provider.option_choices == {}
    by_code = provider.credential_id()
    by_key = vendor.adapter(appcode=None).credential_id()
    assert by_code.startswith("appcode~")
    assert by_key.startswith("appkey~")
    assert APPCODE not in by_code
    assert APP_KEY not in by_key
    assert vendor.adapter(appcode=None, app_key=None).credential_id() == "unset"


# --- over loopback -------------------------------------------------------------------


@pytest.mark.parametrize("signed", [False, True], ids=["appcode", "signature"])
def test_success(vendor: Vendor, signed: bool) -> None:
    image = prepared(data=CAR)

    async def scenario(lb: Loopback) -> tuple[Any, Any]:
        provider = lb.adapter(**(SIGNED if signed else {}))
        return await lb.call(image, adapter=provider), await lb.call(image, adapter=provider)

    first, second = vendor.run(scenario)
    assert isinstance(first, VendorAnswer), first
    assert first.outcome is Outcome.SUCCEEDED
    assert first.billed
    assert first.vendor_code == "0"
    assert first.request_id
    assert len(first.request_id) == 24
    assert first.request_id != second.request_id
    assert first.readings == second.readings  # deterministic per image
    (reading,) = first.readings
    assert isinstance(reading, PlateReading)
    assert reading.position == 0
    assert reading.plate_no == plate_of(51)  # as drawn; the vendor spaces it, we don't
    assert (
        first.raw["showapi_res_body"]["car_no"] == f"{reading.plate_no[0]} {reading.plate_no[1:]}"
    )
    assert reading.confidence is not None
    assert 0.9 <= reading.confidence <= 0.999
    assert reading.quad is not None
    assert len(reading.quad) == 4
    seen = scene.look(CAR)
    assert not isinstance(seen, scene.Unreadable)
    left, top, right, bottom = seen.plates[0].box  # the corners are where it is drawn
    assert [p["x"] for p in reading.quad] == [left, right, right, left]
    assert all(top - 3 <= p["y"] <= bottom + 3 for p in reading.quad)


def test_what_the_image_shows_decides(vendor: Vendor) -> None:
    """The largest plate; none, or the seeded failure: the doc's 失败响应 (billed)."""
    pair = side_by_side(vehicle_photo(52, (240, 150)), CAR)
    assert vendor.one(prepared(data=pair)).readings[0].plate_no == plate_of(51)  # type: ignore[union-attr]
    for data, settings in (
        (make_image(), None),
        (vehicle_photo(53, (480, 300), plate=False), None),
        (CAR, vendor.settings(failure_rate=1.0)),
    ):
        result = vendor.one(prepared(data=data), settings)
        assert (result.outcome, result.billed, result.readings) == (Outcome.NO_RESULT, True, [])  # type: ignore[union-attr]
    unsure = vendor.one(prepared(data=CAR), vendor.settings(warning_rate=1.0))
    assert unsure.readings[0].confidence < 0.9  # type: ignore[union-attr,operator]


def test_field_overrides(vendor: Vendor) -> None:
    image = prepared({"plate": "粤 BP57E7", "confidence": 0.5}, data=CAR)
    result: Any = vendor.one(image)
    (reading,) = result.readings
    assert reading.plate_no == "粤BP57E7"
    assert reading.confidence == 0.5


def test_empty_is_no_result_and_billed(vendor: Vendor) -> None:
    result = vendor.one(prepared({"empty": True}))
    assert isinstance(result, VendorAnswer)
    assert result.outcome is Outcome.NO_RESULT
    assert result.readings == []
    assert result.billed  # showapi_fee_num 1, as the doc's 失败响应


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x00\x01 not an image at all", "20"),
        (make_image(fmt="GIF"), "60"),
    ],
)
def test_vendor_rejects_the_image(vendor: Vendor, data: bytes, code: str) -> None:
    result = vendor.one(prepared(data=data))
    assert isinstance(result, VendorRejectedImage), result
    assert result.outcome is Outcome.INVALID_IMAGE
    assert result.vendor_code == code
    assert result.retryable is False
    assert result.billed is False


def test_large_image_is_streamed_signed_and_accepted(vendor: Vendor) -> None:
    png = prepared({"plate": "京A00001"}, data=vehicle_photo(54, (640, 480), "PNG")).data
    png += bytes(range(256)) * 11_000  # trailing bytes
    image = prepared(data=png)
    assert 3_700_000 < len(image.b64) <= 4_000_000

    async def scenario(lb: Loopback) -> list[Any]:
        return [await lb.call(image), await lb.call(image, adapter=lb.adapter(**SIGNED))]

    for result in vendor.run(scenario):
        assert isinstance(result, VendorAnswer), result
        assert result.readings[0].plate_no == "京A00001"  # type: ignore[union-attr]


def test_too_large_is_refused_before_calling(vendor: Vendor) -> None:
    with pytest.raises(InvalidImage, match="over 4000000"):
        vendor.adapter().build_request(prepared(data=b"x" * 3_000_003), {})


def test_rate_limited_by_real_throttling(vendor: Vendor) -> None:
    settings = vendor.settings(limits={NAME: 3})

    async def scenario(lb: Loopback) -> tuple[list[Any], dict[str, int]]:
        results = await asyncio.gather(*(lb.call(prepared()) for _ in range(10)))
        return list(results), lb.simulator.snapshot()[NAME]

    results, stats = vendor.run(scenario, settings)
    limited = [r for r in results if isinstance(r, RateLimited)]
    assert len(limited) == stats["throttled"] >= 5
    for result in limited:
        assert result.vendor_code == "Throttled by APP Flow Control"
        assert result.http_status == 403
        assert result.retryable
        assert result.request_id
        assert not result.billed
    assert sum(isinstance(r, VendorAnswer) for r in results) == 10 - len(limited)


def test_auth_failures(vendor: Vendor) -> None:
    """Every gateway refusal of our credentials opens the circuit; none is billed."""
    now = time.time()

    async def scenario(lb: Loopback) -> list[Any]:
        cases = [
            lb.adapter(appcode="0" * 32),
            lb.adapter(**SIGNED, app_secret="not-the-secret"),
            lb.adapter(**SIGNED, app_key="999999"),
            lb.adapter(**SIGNED, clock=lambda: now - 16 * 60),
            lb.adapter(**SIGNED, clock=lambda: now + 16 * 60),
        ]
        results = [await lb.call(prepared(), adapter=a) for a in cases]
        # The same signed request twice: the gateway refuses the replayed nonce.
        provider = lb.adapter(**SIGNED, nonce=lambda: "fixed-nonce")
        request = provider.build_request(prepared(), {})
        assert isinstance(await lb.send(provider, request), VendorAnswer)
        results.append(await lb.send(provider, request))
        # A body changed after signing: the form parameters are signed.
        request = lb.adapter(**SIGNED).build_request(prepared(), {})
        body = (request.body or b"")[:-8] + b"AAAAAAAA"
        tampered = type(request)(request.method, request.url, request.headers, body)
        results.append(await lb.send(provider, tampered))
        # No credentials at all in the request.
        bare = type(request)(request.method, request.url, {"Content-Type": "x"}, body)
        results.append(await lb.send(provider, bare))
        return results

    results = vendor.run(scenario)
    assert [r.vendor_code for r in results] == [
        "Invalid AppCode",
        "Invalid Signature",
        "Invalid AppKey",
        "Invalid Timestamp",
        "Invalid Timestamp",
        "Nonce Used",
        "Invalid Signature",
        "Missing AppCode",
    ]
    for result in results:
        assert isinstance(result, ProviderUnavailable), result
        assert result.http_status in (400, 401, 403)
        assert not result.retryable
        assert not result.billed
        assert result.request_id


def test_simulator_without_credentials_refuses_everyone(vendor: Vendor) -> None:
    settings = vendor.settings(appcode=None, app_key=None, app_secret=None)

    async def scenario(lb: Loopback) -> list[Any]:
        return [
            await lb.call(prepared(), adapter=lb.adapter(appcode=APPCODE)),
            await lb.call(
                prepared(), adapter=lb.adapter(**SIGNED, app_key=APP_KEY, app_secret="s")
            ),
        ]

    assert [r.vendor_code for r in vendor.run(scenario, settings)] == [
        "Invalid AppCode",
        "Invalid AppKey",
    ]


# --- every code: offline and over loopback -------------------------------------------

RET_OUTCOMES: dict[int, Outcome] = {
    10: Outcome.TRANSIENT,
    20: Outcome.INVALID_IMAGE,
    30: Outcome.TRANSIENT,
    40: Outcome.PROVIDER_UNAVAILABLE,
    50: Outcome.INVALID_IMAGE,
    60: Outcome.INVALID_IMAGE,
    70: Outcome.TRANSIENT,
    80: Outcome.TRANSIENT,
    90: Outcome.TRANSIENT,
    99: Outcome.TRANSIENT,  # not in the doc: transient, code kept
}


def envelope(body: dict[str, Any], **top: Any) -> bytes:
    answer = {"showapi_res_error": "", "showapi_res_code": 0, "showapi_res_id": "r-1"}
    return json.dumps(answer | top | {"showapi_res_body": body}, ensure_ascii=False).encode()


@pytest.mark.parametrize("code", sorted(RET_OUTCOMES))
def test_ret_code_table(vendor: Vendor, code: int) -> None:
    error_msg = "图片解析失败" if code == 20 else ""
    result: Any = vendor.result(envelope({"ret_code": code, "car_no": "", "error_msg": error_msg}))
    assert isinstance(result, JobError)
    assert result.outcome is RET_OUTCOMES[code]
    assert result.vendor_code == str(code)
    assert result.request_id == "r-1"
    assert result.http_status == 200
    assert result.billed is False
    assert result.raw["showapi_res_body"]["ret_code"] == code  # type: ignore[index]
    assert str(result).startswith("aliyun_plate: ")
    if code == 20:
        assert result.message == "图片解析失败"


def test_every_documented_ret_code_is_tested() -> None:
    assert set(RET_CODES) - {0} <= set(RET_OUTCOMES)


def test_ret_code_billing_follows_fee_num(vendor: Vendor) -> None:
    charged = vendor.result(envelope({"ret_code": 30}, showapi_fee_num=1))
    assert charged.billed is True
    free = vendor.result(envelope({"ret_code": 0, "car_no": "京A1"}, showapi_fee_num=0))
    assert free.outcome is Outcome.SUCCEEDED
    assert free.billed is False


def test_every_ret_code_over_loopback(vendor: Vendor) -> None:
    async def scenario(lb: Loopback) -> dict[int, Outcome]:
        results = await asyncio.gather(*(lb.call(prepared({"error": c})) for c in RET_OUTCOMES))
        return {c: r.outcome for c, r in zip(RET_OUTCOMES, results, strict=True)}

    assert vendor.run(scenario, vendor.settings(throttle=False)) == RET_OUTCOMES


GATEWAY_OUTCOMES: dict[tuple[int, str], Outcome] = {
    **{
        (400, code): Outcome.PROVIDER_UNAVAILABLE
        for code, kind in GATEWAY_ERRORS.items()
        if kind is ProviderUnavailable
    },
    (403, "Invalid AppCode `83359fd73fe94948385f570e3c1391aa`"): Outcome.PROVIDER_UNAVAILABLE,
    (
        400,
        "Invalid Signature, Server StringToSign:`POST#application/json##`",
    ): Outcome.PROVIDER_UNAVAILABLE,
    (403, "Throttled by USER Flow Control"): Outcome.RATE_LIMITED,
    (403, "Throttled by APP Flow Control"): Outcome.RATE_LIMITED,
    (403, "Throttled by API Flow Control"): Outcome.RATE_LIMITED,
    (403, "Throttled by DOMAIN Flow Control"): Outcome.RATE_LIMITED,
    (403, "Throttled by GROUP Flow Control"): Outcome.RATE_LIMITED,
    (413, "Request body too Large"): Outcome.INVALID_IMAGE,
    (500, "Internal Error"): Outcome.TRANSIENT,
    (500, "Failed To Call Backend Service"): Outcome.TRANSIENT,
    (503, "Service Unavailable"): Outcome.TRANSIENT,
    (504, "Async Service"): Outcome.TRANSIENT,
    (504, "Backend Service Timeout"): Outcome.TRANSIENT,
    (400, "Some New Gateway Refusal"): Outcome.PROVIDER_UNAVAILABLE,
    (502, ""): Outcome.TRANSIENT,
    (500, ""): Outcome.TRANSIENT,
    (429, ""): Outcome.RATE_LIMITED,
    (413, ""): Outcome.INVALID_IMAGE,
    (401, ""): Outcome.PROVIDER_UNAVAILABLE,
    (403, ""): Outcome.PROVIDER_UNAVAILABLE,
    (404, ""): Outcome.PROVIDER_UNAVAILABLE,
    (400, ""): Outcome.TRANSIENT,  # a 4xx from a proxy, not the gateway: BadResponse
}


@pytest.mark.parametrize(("status", "message"), sorted(GATEWAY_OUTCOMES))
def test_gateway_errors(vendor: Vendor, status: int, message: str) -> None:
    headers = {"X-Ca-Request-Id": "REQ-1"}
    if message:
        headers["X-Ca-Error-Message"] = message
    result = vendor.result(b"", status, headers)
    assert isinstance(result, JobError)
    assert result.outcome is GATEWAY_OUTCOMES[status, message]
    assert result.http_status == status
    assert result.request_id == "REQ-1"
    assert result.billed is False
    # Echoes after "`" or "," are cut: the AppCode never reaches messages, codes or raw.
    assert "`" not in str(result)
    assert APPCODE not in str(result) + repr(result.raw)
    if message:
        assert result.vendor_code == message.split("`")[0].split(",")[0].strip()


@pytest.mark.parametrize(
    "message", ["Quota Exhausted", "User Arrears", "Unauthorized", "Throttled by API Flow Control"]
)
def test_gateway_errors_over_loopback(vendor: Vendor, message: str) -> None:
    result = vendor.one(prepared({"error": message}))
    assert isinstance(result, JobError)
    assert result.vendor_code == message
    assert result.http_status == 403
    expected = (
        Outcome.RATE_LIMITED if message.startswith("Throttled") else Outcome.PROVIDER_UNAVAILABLE
    )
    assert result.outcome is expected


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        ("系统调用错误", Outcome.TRANSIENT),
        ("", Outcome.TRANSIENT),
        ("可调用次数或金额为0", Outcome.PROVIDER_UNAVAILABLE),
        ("app无权限调用接口", Outcome.PROVIDER_UNAVAILABLE),
        ("调用频率受限", Outcome.RATE_LIMITED),
    ],
)
def test_platform_errors(vendor: Vendor, error: str, outcome: Outcome) -> None:
    result = vendor.result(envelope({}, showapi_res_code=-1, showapi_res_error=error))
    assert isinstance(result, JobError)
    assert result.outcome is outcome
    assert result.vendor_code == "showapi:-1"
    assert result.message == (error or "showapi_res_code -1")
    assert result.billed is False


def test_platform_error_over_loopback(vendor: Vendor) -> None:
    result = vendor.one(prepared({"error": -1}))
    assert isinstance(result, ServerError)
    assert result.vendor_code == "showapi:-1"


# --- the doc's examples, verbatim ----------------------------------------------------

DOC_SUCCESS = """{
"showapi_res_error": "",
"showapi_res_code": 0,
"showapi_res_id": "60f531320de3761d66a50817",
"showapi_res_body": {
"confidence_level": 0.99745339155197144,
"ret_code": 0,
"range": [
{
"y": 308,
"x": 363

},
{
"y": 276,
"x": 580

},
{
"y": 323,
"x": 587

},
{
"y": 356,
"x": 371

}
],
"car_no": "粤 BP57E7"

}
}"""

DOC_FAILURE = """{
"showapi_res_error": "",
"showapi_fee_num": 1,
"showapi_res_code": 0,
"showapi_res_id": "64264f430de376852db66d53",
"showapi_res_body": {
"confidence_level": "",
"ret_code": 0,
"range": [],
"error_msg": "",
"car_no": ""

}
}"""


def test_doc_success_example(vendor: Vendor) -> None:
    result: Any = vendor.result(DOC_SUCCESS.encode())
    assert result.outcome is Outcome.SUCCEEDED
    assert result.request_id == "60f531320de3761d66a50817"
    assert result.billed is True  # ret_code 0, no showapi_fee_num
    assert result.readings == [
        PlateReading(
            position=0,
            plate_no="粤BP57E7",
            confidence=0.99745339155197144,
            quad=[
                {"x": 363, "y": 308},
                {"x": 580, "y": 276},
                {"x": 587, "y": 323},
                {"x": 371, "y": 356},
            ],
        )
    ]
    assert result.raw["showapi_res_body"]["car_no"] == "粤 BP57E7"  # the vendor's own


def test_doc_failure_example_is_no_result_billed(vendor: Vendor) -> None:
    result = vendor.result(DOC_FAILURE.encode())
    assert isinstance(result, VendorAnswer)
    assert result.outcome is Outcome.NO_RESULT
    assert result.readings == []
    assert result.request_id == "64264f430de376852db66d53"
    assert result.billed is True  # showapi_fee_num 1
    assert result.raw == json.loads(DOC_FAILURE)


@pytest.mark.parametrize(
    ("points", "quad"),
    [
        ([], None),
        ([{"x": 1}], None),
        ("junk", None),
        ([{"x": 1, "y": 2}] * 3, None),
        ([{"x": "1.6", "y": 2}] * 4, [{"x": 2, "y": 2}] * 4),
    ],
)
def test_odd_ranges(vendor: Vendor, points: Any, quad: Any) -> None:
    result: Any = vendor.result(envelope({"ret_code": "0", "car_no": "京A12345", "range": points}))
    assert result.readings[0].quad == quad


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"<html>"),
        (200, b"[1, 2]"),
        (200, b'{"showapi_res_body": {}}'),
        (200, b'{"showapi_res_code": 0, "showapi_res_body": {"car_no": "x"}}'),
        (200, b'{"showapi_res_code": 0, "showapi_res_body": []}'),
    ],
)
def test_bad_answers(vendor: Vendor, status: int, body: bytes) -> None:
    result = vendor.result(body, status)
    assert isinstance(result, BadResponse)
    assert result.http_status == status


def test_raw_has_no_credential_like_keys(vendor: Vendor) -> None:
    result: Any = vendor.result(
        envelope({"ret_code": 0, "car_no": "京A1", "appcode": "x"}, Signature="s")
    )
    assert "Signature" not in result.raw
    assert "appcode" not in result.raw["showapi_res_body"]


# --- requests and secrets ------------------------------------------------------------


def test_request_shape_appcode(vendor: Vendor) -> None:
    image = prepared()
    request = vendor.adapter().build_request(image, {})
    assert request.method == "POST"
    assert request.url == "https://car6.market.alicloudapi.com/ocrCars"
    assert request.body == form_body({}, {"img_base64": image.b64})
    assert request.body.startswith(b"img_base64=iVBORw0KGgo")
    assert request.headers == {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
        "Authorization": f"APPCODE {APPCODE}",
    }


def test_request_shape_signature(vendor: Vendor) -> None:
    provider = vendor.adapter(appcode=None, clock=lambda: 1_700_000_000.0, nonce=lambda: "n-1")
    request = provider.build_request(prepared(), {})
    headers = request.headers
    assert "Authorization" not in headers
    assert headers["x-ca-key"] == APP_KEY
    assert headers["x-ca-timestamp"] == "1700000000000"
    assert headers["x-ca-nonce"] == "n-1"
    assert headers["x-ca-signature-method"] == "HmacSHA256"
    assert headers["x-ca-signature-headers"] == (
        "x-ca-key,x-ca-nonce,x-ca-signature-method,x-ca-timestamp"
    )
    assert len(base64.b64decode(headers["x-ca-signature"])) == 32


@pytest.mark.parametrize(
    "creds",
    [
        {"appcode": None, "app_key": None, "app_secret": None},
        {"appcode": None, "app_secret": None},
        {"appcode": None, "app_key": None},
    ],
)
def test_missing_credentials(vendor: Vendor, creds: dict[str, None]) -> None:
    with pytest.raises(ConfigError, match=r"APPCODE, or both .*APP_KEY and .*APP_SECRET") as caught:
        vendor.adapter(**creds).build_request(prepared(), {})
    assert APP_SECRET not in str(caught.value)
    assert APPCODE not in str(caught.value)


def test_options_are_refused(vendor: Vendor) -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        vendor.adapter().build_request(prepared(), {"card_side": "FRONT"})


def test_secrets_never_leak(vendor: Vendor) -> None:
    settings = vendor.settings()
    texts = [
        repr(vendor.block(settings)),
        str(vendor.block(settings)),
        vendor.adapter().credential_id(),
    ]
    signed = vendor.adapter(appcode=None).build_request(prepared(), {})
    texts += [*signed.headers.values(), repr(signed)]

    async def scenario(lb: Loopback) -> list[Any]:
        calls = [lb.call(prepared({"error": c})) for c in (20, 40, 90, -1, "Quota Exhausted")]
        calls += [
            lb.call(prepared(), adapter=lb.adapter(appcode="0" * 32)),
            lb.call(prepared(), adapter=lb.adapter(**SIGNED, app_secret="wrong")),
            lb.call(prepared()),
            lb.call(prepared(), adapter=lb.adapter(**SIGNED)),
        ]
        return list(await asyncio.gather(*calls))

    for result in vendor.run(scenario, vendor.settings(throttle=False)):
        texts += [str(result), repr(result), json.dumps(result.raw, ensure_ascii=False)]
        if isinstance(result, JobError):
            texts += [result.message, repr(result.args)]
    assert not [t for t in texts if APP_SECRET in t]
    # The APPCODE must travel in the Authorization header; nowhere else.
    assert not [t for t in texts if APPCODE in t]


def test_non_finite_numbers_are_not_readings(vendor: Vendor) -> None:
    body = json.loads(DOC_SUCCESS)
    body["showapi_res_body"]["confidence_level"] = "NaN"
    body["showapi_res_body"]["range"][0]["x"] = "inf"
    result = vendor.result(json.dumps(body).encode())
    assert isinstance(result, VendorAnswer)
    (reading,) = result.readings
    assert reading.plate_no == "粤BP57E7"  # type: ignore[union-attr]
    assert (reading.confidence, reading.quad) == (None, None)  # type: ignore[union-attr]


def test_signed_base_url_with_an_encoded_query_is_accepted(vendor: Vendor) -> None:
    """The gateway signs a query's raw values: a base URL carrying percent-encoded text,
    blanks and a "+" signs the same on both sides, however aiohttp re-encodes it."""
    query = "lang=%E4%B8%AD%E6%96%87&note=a%20b%7Ec&blank=%20%20&plus=1%2B1&empty="

    async def scenario(lb: Loopback) -> Any:
        base = lb.vendor.block(lb.settings).base_url
        adapter = lb.adapter(**SIGNED, base_url=f"{base}?{query}")
        return await lb.call(prepared(data=CAR), adapter=adapter)

    result = vendor.run(scenario)
    assert isinstance(result, VendorAnswer), result
    assert result.readings[0].plate_no == plate_of(51)  # type: ignore[union-attr]
