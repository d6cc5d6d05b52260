"""The Tianapi licenseplate adapter: against the simulator over loopback, and offline."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.support.vendors import NON_200_ANSWERS, Vendor, fake_secret, prepared
from worker.errors import (
    BadResponse,
    ConfigError,
    InvalidImage,
    JobError,
    Outcome,
    ProviderUnavailable,
    RateLimited,
    VendorRejectedImage,
)
from worker.providers.base import PlateReading, Provider, VendorAnswer
from worker.providers.registry import get_provider
from worker.providers.tianapi_plate import ERRORS, TianapiPlate
from worker.simulator.directives import make_image
from worker.simulator.samples import plate_of, side_by_side, vehicle_photo

NAME = "tianapi_plate"
KEY = fake_secret(NAME, "key")
pytestmark = pytest.mark.vendor(NAME)
CAR = vehicle_photo(41, (640, 480))
THREE = side_by_side(*(vehicle_photo(42 + i, (400, 300)) for i in range(3)))


def test_contract(vendor: Vendor) -> None:
    provider = get_provider(NAME, vendor.settings())
    assert isinstance(provider, TianapiPlate)
    assert isinstance(provider, Provider)
    assert provider.name == NAME
    assert provider.limits.formats == frozenset({"JPEG", "PNG", "BMP"})
    assert provider.limits.max_b64_bytes == 3_000_000
    assert provider.limits.min_side == 15
    assert provider.default_rate == 5.0
    assert provider.option_choices == {}
    cred = provider.credential_id()
    assert cred.startswith("sha256:")
    assert KEY not in cred
    assert cred == vendor.adapter().credential_id()
    assert cred != vendor.adapter(key="other").credential_id()
    assert vendor.adapter(key=None).credential_id() == "unset"


# --- requests -------------------------------------------------------------------------


def test_request_is_the_docs_form_post(vendor: Vendor) -> None:
    image = prepared()
    request = vendor.adapter().build_request(image, {})
    assert request.method == "POST"
    assert request.url == "https://apis.tianapi.com/licenseplate/index"
    assert request.headers == {"Content-Type": "application/x-www-form-urlencoded"}
    assert request.multipart is None
    form = parse_qs((request.body or b"").decode(), strict_parsing=True)
    assert form == {"key": [KEY], "img": [image.b64.decode()]}
    assert not form["img"][0].startswith("data:")
    assert KEY not in request.url
    assert KEY not in repr(request)


def test_refusals_before_calling(vendor: Vendor) -> None:
    with pytest.raises(ConfigError, match="VREC_TIANAPI_PLATE__KEY"):
        vendor.adapter(key=None).build_request(prepared(), {})
    with pytest.raises(ConfigError, match="VREC_TIANAPI_PLATE__KEY"):
        vendor.adapter(key="").build_request(prepared(), {})
    with pytest.raises(ConfigError, match="unknown option"):
        vendor.adapter().build_request(prepared(), {"card_side": "FRONT"})
    with pytest.raises(InvalidImage, match="over 3000000"):
        vendor.adapter().build_request(prepared(data=b"x" * 2_250_003), {})  # 3,000,004 base64
    with pytest.raises(InvalidImage, match="empty"):
        vendor.adapter().build_request(prepared(data=b""), {})
    assert vendor.adapter().build_request(prepared(data=b"x" * 2_250_000), {})  # exactly 3,000,000


# --- over loopback --------------------------------------------------------------------


def test_success_is_billed_and_deterministic(vendor: Vendor) -> None:
    image = prepared(data=vehicle_photo(40, (640, 480), plate="沪A0762学", plate_color="yellow"))

    async def scenario() -> tuple[Any, Any]:
        async with vendor.loopback() as lb:
            return await lb.call(image), await lb.call(image)

    first, second = asyncio.run(scenario())
    assert isinstance(first, VendorAnswer), first
    assert first.outcome is Outcome.SUCCEEDED
    assert first.billed
    assert first.vendor_code == "200"
    assert first.readings[0] == PlateReading(0, plate_no="沪A0762学", color="yellow")
    assert first.readings == second.readings
    assert first.raw["code"] == 200


def test_several_plates_per_image(vendor: Vendor) -> None:
    image = prepared({"plate": ["京A11111", "粤B22222"]}, data=THREE)
    result = vendor.one(image)
    assert isinstance(result, VendorAnswer), result
    assert [r.position for r in result.readings] == [0, 1, 2]  # type: ignore[union-attr]
    plates = [r.plate_no for r in result.readings if isinstance(r, PlateReading)]
    assert plates == ["京A11111", "粤B22222", plate_of(44)]  # the third as drawn
    assert all(isinstance(r, PlateReading) and r.color == "blue" for r in result.readings)
    assert "list" in result.raw["result"]
    two = vendor.one(prepared({"count": 2}, data=THREE))
    assert [r.plate_no for r in two.readings] == [plate_of(42), plate_of(43)]  # type: ignore[union-attr]


def test_nothing_drawn_and_seeded_failures_are_250(vendor: Vendor) -> None:
    for data in (make_image(), vehicle_photo(45, (640, 480), plate=False)):
        result = vendor.one(prepared(data=data))
        assert (result.outcome, result.vendor_code, result.billed) == (
            Outcome.NO_RESULT,
            "250",
            False,
        )
    failing = vendor.one(prepared(data=CAR), vendor.settings(failure_rate=1.0))
    assert (failing.outcome, failing.vendor_code) == (Outcome.NO_RESULT, "250")


@pytest.mark.parametrize(
    ("directive", "outcome", "code", "billed"),
    [
        ({"empty": True}, Outcome.NO_RESULT, "250", False),
        ({"count": 0}, Outcome.NO_RESULT, "200", True),  # code 200, no plate: still billed
        ({"count": 1, "plate": ""}, Outcome.NO_RESULT, "200", True),
        ({"error": 270}, Outcome.INVALID_IMAGE, "270", False),
        ({"error": 100}, Outcome.TRANSIENT, "100", False),
        ({"error": 150, "message": "余额不足"}, Outcome.PROVIDER_UNAVAILABLE, "150", False),
    ],
)
def test_directed_outcomes(
    vendor: Vendor, directive: dict[str, Any], outcome: Outcome, code: str | None, billed: bool
) -> None:
    result: Any = vendor.one(prepared(directive, data=CAR))
    assert result.outcome is outcome, result
    assert result.vendor_code == code
    assert result.billed is billed
    if "message" in directive:
        assert result.message == "余额不足"


def test_undecodable_image_is_invalid(vendor: Vendor) -> None:
    result = vendor.one(prepared(data=b"GIF89a not really an image"))
    assert isinstance(result, VendorRejectedImage)
    assert result.vendor_code == "270"
    assert result.retryable is False


def test_large_image_is_streamed_and_accepted(vendor: Vendor) -> None:
    png = prepared({"plate": "京A00001"}, data=vehicle_photo(46, (640, 480), "PNG")).data
    png += bytes(range(256)) * 8_700  # trailing bytes
    image = prepared(data=png)
    assert 2_900_000 < len(image.b64) <= 3_000_000
    result = vendor.one(image)
    assert isinstance(result, VendorAnswer), result
    assert result.readings[0].plate_no == "京A00001"  # type: ignore[union-attr]


def test_rate_limited_by_real_throttling(vendor: Vendor) -> None:
    settings = vendor.settings(limits={NAME: 3})

    async def scenario() -> tuple[list[Any], dict[str, Any]]:
        async with vendor.loopback(settings) as lb:
            results = await asyncio.gather(*(lb.call(prepared(data=CAR)) for _ in range(8)))
            return list(results), lb.simulator.snapshot()[NAME]

    results, stats = asyncio.run(scenario())
    limited = [r for r in results if isinstance(r, RateLimited)]
    assert len(limited) == stats["throttled"] == 5
    assert all(r.vendor_code == "130" and r.retryable and not r.billed for r in limited)
    assert sum(isinstance(r, VendorAnswer) for r in results) == 3


@pytest.mark.parametrize(
    ("sim_key", "adapter_key", "code"),
    [(KEY, "not-the-key", "230"), (None, KEY, "230")],
)
def test_wrong_key_is_provider_unavailable(
    vendor: Vendor, sim_key: str | None, adapter_key: str, code: str
) -> None:
    async def scenario() -> Any:
        async with vendor.loopback(vendor.settings(key=sim_key)) as lb:
            return await lb.call(prepared(), adapter=lb.adapter(key=adapter_key))

    result = asyncio.run(scenario())
    assert isinstance(result, ProviderUnavailable), result
    assert result.vendor_code == code
    assert not result.retryable
    assert adapter_key not in str(result)
    assert adapter_key not in json.dumps(result.raw, ensure_ascii=False)


# --- the code table -------------------------------------------------------------------

CODES: dict[int, Outcome] = {
    100: Outcome.TRANSIENT,
    110: Outcome.PROVIDER_UNAVAILABLE,
    120: Outcome.TRANSIENT,
    130: Outcome.RATE_LIMITED,
    140: Outcome.PROVIDER_UNAVAILABLE,
    150: Outcome.PROVIDER_UNAVAILABLE,
    160: Outcome.PROVIDER_UNAVAILABLE,
    170: Outcome.PROVIDER_UNAVAILABLE,
    180: Outcome.PROVIDER_UNAVAILABLE,
    190: Outcome.PROVIDER_UNAVAILABLE,
    230: Outcome.PROVIDER_UNAVAILABLE,
    240: Outcome.PROVIDER_UNAVAILABLE,
    250: Outcome.NO_RESULT,
    260: Outcome.PROVIDER_UNAVAILABLE,
    270: Outcome.INVALID_IMAGE,
    280: Outcome.PROVIDER_UNAVAILABLE,
    290: Outcome.INVALID_IMAGE,
    999: Outcome.TRANSIENT,  # not in the doc: retried with the code kept
}


@pytest.mark.parametrize("code", sorted(CODES))
def test_error_code_table(vendor: Vendor, code: int) -> None:
    body = {"code": code, "msg": "m"}
    result = vendor.result(body)
    assert result.outcome is CODES[code]
    assert result.vendor_code == str(code)
    assert result.billed is False
    assert result.raw == body
    if isinstance(result, JobError):
        assert result.http_status == 200
        assert result.provider == NAME
        assert result.message == "m"


def test_every_doc_code_is_in_the_table_and_tested(vendor: Vendor) -> None:
    assert set(ERRORS) == set(CODES) - {999}
    assert vendor.result({"code": "130", "msg": "x"}).outcome is Outcome.RATE_LIMITED  # as text


def test_every_code_over_loopback(vendor: Vendor) -> None:
    async def scenario() -> list[Any]:
        async with vendor.loopback(vendor.settings(throttle=False)) as lb:
            return list(await asyncio.gather(*(lb.call(prepared({"error": c})) for c in CODES)))

    results = asyncio.run(scenario())
    assert {c: r.outcome for c, r in zip(CODES, results, strict=True)} == CODES
    assert [r.vendor_code for r in results] == [str(c) for c in CODES]


# --- the doc's examples and the answer shapes, offline --------------------------------

# The doc's field table: code 200, msg success, result{color: black, number: 沪A0762学}.
DOC_ONE: dict[str, Any] = {
    "code": 200,
    "msg": "success",
    "result": {"color": "black", "number": "沪A0762学"},
}
DOC_ROWS = [PlateReading(0, plate_no="沪A0762学", color="black")]
TWO = [{"color": "blue", "number": "粤B12345"}, {"color": "green", "number": "粤BD12345"}]
TWO_ROWS = [
    PlateReading(0, plate_no="粤B12345", color="blue"),
    PlateReading(1, plate_no="粤BD12345", color="green"),
]


@pytest.mark.parametrize(
    ("body", "rows"),
    [
        (DOC_ONE, DOC_ROWS),
        ({"code": 200, "msg": "success", "result": TWO}, TWO_ROWS),
        ({"code": 200, "msg": "success", "result": {"list": TWO}}, TWO_ROWS),
        ({"code": 200, "msg": "success", "newslist": TWO}, TWO_ROWS),  # the old domain
        ({"code": "200", "msg": "success", "result": {"color": " Blue ", "number": "京A1"}}, None),
        (  # an entry without a number is skipped; positions stay the vendor's
            {"code": 200, "result": [{"color": "blue", "number": ""}, TWO[1]]},
            [PlateReading(1, plate_no="粤BD12345", color="green")],
        ),
    ],
)
def test_answer_shapes(
    vendor: Vendor, body: dict[str, Any], rows: list[PlateReading] | None
) -> None:
    result = vendor.answer(body)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.billed
    assert result.vendor_code == "200"
    assert result.request_id is None  # Tianapi returns none
    assert result.raw == body
    if rows is None:
        rows = [PlateReading(0, plate_no="京A1", color="blue")]
    assert result.readings == rows


@pytest.mark.parametrize(
    "result",
    [None, {}, [], {"list": []}, {"list": None}, {"color": "blue", "number": ""}, [{"x": 1}]],
)
def test_code_200_without_a_plate_is_a_billed_no_result(vendor: Vendor, result: Any) -> None:
    answer = vendor.answer({"code": 200, "msg": "success", "result": result})
    assert answer.outcome is Outcome.NO_RESULT
    assert answer.billed
    assert answer.readings == []


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        *NON_200_ANSWERS,
        (200, b"<html>", BadResponse),
        (200, b"[1, 2]", BadResponse),
        (200, b'{"msg": "no code"}', BadResponse),
        (200, b'{"code": true}', BadResponse),
        (200, '{"code": "²"}'.encode(), BadResponse),  # isdigit() but not int()
        (200, b'{"code": 200, "msg": "success"}', BadResponse),
        (200, b'{"code": 200, "result": "bad"}', BadResponse),
        (200, b'{"code": 200, "result": {"other": 1}}', BadResponse),
        (200, b'{"code": 200, "result": {"list": "bad"}}', BadResponse),
        (200, b'{"code": 200, "result": ["bad"]}', BadResponse),
    ],
)
def test_bad_answers(vendor: Vendor, status: int, body: bytes, error: type[JobError]) -> None:
    with pytest.raises(error) as caught:
        vendor.answer(body, status)
    assert caught.value.http_status == status
    assert caught.value.billed is False


def test_raw_never_holds_the_key(vendor: Vendor) -> None:
    body = {
        "code": 230,
        "msg": f"key错误或为空: {KEY}",
        "key": KEY,
        "result": {"apikey": KEY, "echo": [f"x{KEY}x"], "keep": 1},
    }
    result = vendor.stored(body)
    assert isinstance(result, ProviderUnavailable)
    stored = json.dumps(result.raw, ensure_ascii=False)
    assert KEY not in stored
    assert KEY not in str(result)
    assert result.raw["result"] == {"echo": ["x***x"], "keep": 1}  # type: ignore[index]
    ok = vendor.stored({"code": 200, "msg": KEY, "result": DOC_ONE["result"]})
    assert isinstance(ok, VendorAnswer)
    assert KEY not in json.dumps(ok.raw, ensure_ascii=False)
