"""The Juhe carDetect adapter: against its simulator over loopback, and offline."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest

from tests.support.vendors import Result, Vendor, fake_secret, prepared
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
from worker.image_limits import PreparedImage
from worker.providers.base import CarModelCandidate, Provider, VendorAnswer
from worker.providers.juhe import SYSTEM_ERRORS
from worker.providers.juhe_car import ERRORS
from worker.providers.registry import get_provider
from worker.simulator import scene
from worker.simulator.directives import make_image
from worker.simulator.samples import licence_page, side_by_side, vehicle_photo

NAME = "juhe_car"
KEY = fake_secret(NAME, "key")
pytestmark = pytest.mark.vendor(NAME)
CAR, OTHER_CAR = vehicle_photo(21, (640, 480)), vehicle_photo(22, (640, 480))


# --- the contract ----------------------------------------------------------------------


def test_contract(vendor: Vendor) -> None:
    provider = get_provider(NAME, vendor.settings())
    assert isinstance(provider, Provider)
    assert provider.name == NAME
    assert provider.limits.formats == frozenset({"JPEG", "PNG", "BMP"})
    assert provider.limits.max_b64_bytes == 4_000_000
    assert (provider.limits.min_side, provider.limits.max_side) == (15, 4096)
    assert provider.default_rate == 5.0
    assert provider.option_choices == {}


def test_credential_id_is_stable_and_not_the_key(vendor: Vendor) -> None:
    cred = vendor.adapter().credential_id()
    assert cred == vendor.adapter().credential_id()
    assert cred.startswith("sha256:")
    assert KEY not in cred
    assert KEY[:6] not in cred
    assert vendor.adapter(key="another-key").credential_id() != cred
    assert vendor.adapter(key=None).credential_id() == "unset"


def test_request_is_the_docs_form(vendor: Vendor) -> None:
    image = prepared()
    request = vendor.adapter().build_request(image, {})
    assert request.method == "POST"
    assert request.url == "http://apis.juhe.cn/carDetect/index"
    assert request.headers == {"Content-Type": "application/x-www-form-urlencoded"}
    assert request.multipart is None
    body = request.body or b""
    assert body == urlencode({"key": KEY, "image": image.b64.decode()}).encode()
    assert parse_qs(body.decode()) == {"key": [KEY], "image": [image.b64.decode()]}
    assert b"data:" not in body
    assert KEY not in repr(request)


def test_missing_key_options_and_size_are_refused_before_calling(vendor: Vendor) -> None:
    with pytest.raises(ConfigError, match="VREC_JUHE_CAR__KEY"):
        vendor.adapter(key=None).build_request(prepared(), {})
    with pytest.raises(ConfigError, match="unknown option"):
        vendor.adapter().build_request(prepared(), {"card_side": "FRONT"})
    with pytest.raises(InvalidImage, match="over 4000000"):
        vendor.adapter().build_request(prepared(data=b"x" * 3_000_003), {})
    with pytest.raises(InvalidImage, match="empty"):
        vendor.adapter().build_request(prepared(data=b""), {})


# --- over loopback ---------------------------------------------------------------------


def test_success_is_deterministic_per_image(vendor: Vendor) -> None:
    async def scenario() -> list[Result]:
        async with vendor.loopback() as lb:
            images = [prepared(data=CAR), prepared(data=CAR), prepared(data=OTHER_CAR)]
            return [await lb.call(image) for image in images]

    first, again, other = asyncio.run(scenario())
    assert isinstance(first, VendorAnswer), first
    assert first.outcome is Outcome.SUCCEEDED
    assert first.billed is True
    assert first.vendor_code is None
    assert first.readings == again.readings  # type: ignore[union-attr]
    assert first.readings != other.readings  # type: ignore[union-attr]
    readings = [r for r in first.readings if isinstance(r, CarModelCandidate)]
    assert 1 <= len(readings) == len(first.readings) <= 5
    assert [r.rank for r in readings] == list(range(1, len(readings) + 1))
    scores = [r.score for r in readings if r.score is not None]
    assert len(scores) == len(readings)
    assert scores == sorted(scores, reverse=True)
    assert len({r.color for r in readings}) == 1
    assert readings[0].color is not None
    assert all(r.name and r.year for r in readings)
    assert first.raw["result"]["color"] == readings[0].color


def test_count_and_field_overrides(vendor: Vendor) -> None:
    directive = {"count": 3, "name": "奥迪A4L", "year": "2017", "score": 0.9, "color": "黄色"}
    result = vendor.one(prepared(directive, data=CAR))
    assert isinstance(result, VendorAnswer), result
    assert len(result.readings) == 3
    best = result.readings[0]
    assert isinstance(best, CarModelCandidate)
    assert (best.name, best.year, best.score, best.color) == ("奥迪A4L", "2017", 0.9, "黄色")


def test_count_zero_is_a_billed_no_result(vendor: Vendor) -> None:
    result = vendor.one(prepared({"count": 0}, data=CAR))
    assert isinstance(result, VendorAnswer), result
    assert (result.outcome, result.billed, result.readings) == (Outcome.NO_RESULT, True, [])


def test_empty_is_an_unbilled_no_result(vendor: Vendor) -> None:
    result = vendor.one(prepared({"empty": True}))
    assert isinstance(result, VendorAnswer), result
    assert result.outcome is Outcome.NO_RESULT
    assert result.vendor_code == "237102"
    assert result.billed is False
    assert result.raw == {"reason": "非车类或识别不到信息", "result": None, "error_code": 237102}


def test_what_the_image_shows_decides(vendor: Vendor) -> None:
    """No car: 237102 (not billed); a car without a plate is still a car; the colour is
    the paint's; two cars: the larger one; the seeded failure: 237101."""
    for data in (make_image(), licence_page("FRONT", 1)):
        nothing = vendor.one(prepared(data=data))
        assert (nothing.outcome, nothing.vendor_code, nothing.billed) == (
            Outcome.NO_RESULT,
            "237102",
            False,
        )
    bare = vendor.one(prepared(data=vehicle_photo(23, (640, 480), plate=False)))
    assert bare.outcome is Outcome.SUCCEEDED
    painted = scene.look(CAR)
    assert not isinstance(painted, scene.Unreadable)
    car = vendor.one(prepared(data=CAR))
    assert car.readings[0].color == painted.cars[0].color  # type: ignore[union-attr]
    pair = side_by_side(vehicle_photo(22, (320, 240)), CAR)  # the 640-wide one is larger
    assert vendor.one(prepared(data=pair)).readings == car.readings  # type: ignore[union-attr]
    failing = vendor.one(prepared(data=CAR), vendor.settings(failure_rate=1.0))
    assert (failing.outcome, failing.vendor_code) == (Outcome.INVALID_IMAGE, "237101")
    unsure = vendor.one(prepared(data=CAR), vendor.settings(warning_rate=1.0))
    best = [r.score for r in unsure.readings]  # type: ignore[union-attr]
    assert best == [round(r.score * 0.4, 14) for r in car.readings]  # type: ignore[union-attr,operator]


@pytest.mark.parametrize(
    "image",
    [
        prepared(data=b"GIF89a not really an image"),  # valid base64, not an image
        prepared(data=make_image(fmt="GIF")),  # an image, not a format carDetect takes
        prepared(data=make_image()[:60]),  # truncated
        prepared(size=(14, 40)),  # shortest side under 15 px
        prepared(size=(4097, 16)),  # longest side over 4096 px
        PreparedImage(b"x", b"data:image/png;base64,iVBORw0KGgo=", "PNG", 1, 1, False),
    ],
    ids=["not-image", "gif", "truncated", "too-small", "too-long", "data-header"],
)
def test_images_the_vendor_cant_read_are_invalid(vendor: Vendor, image: PreparedImage) -> None:
    result = vendor.one(image)
    assert isinstance(result, VendorRejectedImage), result
    assert result.outcome is Outcome.INVALID_IMAGE
    assert result.vendor_code == "237101"
    assert result.billed is False


def test_rate_limited_when_over_the_simulators_limit(vendor: Vendor) -> None:
    settings = vendor.settings(limits={NAME: 3})

    async def scenario() -> list[Result]:
        async with vendor.loopback(settings) as lb:
            return list(await asyncio.gather(*(lb.call(prepared(data=CAR)) for _ in range(8))))

    results = asyncio.run(scenario())
    limited = [r for r in results if isinstance(r, RateLimited)]
    assert len(limited) == 5
    assert all(r.vendor_code == "10011" and r.retryable and not r.billed for r in limited)


def test_wrong_or_unconfigured_key_is_provider_unavailable(vendor: Vendor) -> None:
    async def scenario() -> list[Result]:
        async with vendor.loopback() as lb:
            return [await lb.call(prepared(), adapter=lb.adapter(key="not-the-key"))]

    async def unconfigured() -> list[Result]:
        async with vendor.loopback(vendor.settings(key=None)) as lb:
            return [await lb.call(prepared())]

    results = asyncio.run(scenario()) + asyncio.run(unconfigured())
    for result in results:
        assert isinstance(result, ProviderUnavailable), result
        assert result.vendor_code == "10001"
        assert result.retryable is False


def test_hand_made_requests_get_the_docs_codes(vendor: Vendor) -> None:
    b64 = base64.b64encode(CAR).decode()

    async def scenario() -> list[Result]:
        async with vendor.loopback() as lb:
            return [
                await lb.raw("GET", params={"key": KEY}),
                await lb.raw("POST", data={"image": b64}),  # no key
                await lb.raw("POST", data={"key": KEY}),  # no image
                await lb.raw("POST", data={"key": KEY, "image": ""}),
                # over 4,000,000 characters of base64 (streamed: a large raw body)
                await lb.raw("POST", data=_large_form(KEY), headers=_FORM),
                await lb.raw("POST", data={"key": KEY, "image": b64}),  # the right one
            ]

    codes = [getattr(r, "vendor_code", None) for r in asyncio.run(scenario())]
    assert codes == ["10007", "10001", "237101", "237101", "237101", None]


_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _large_form(key: str) -> Any:
    import io

    return io.BytesIO(f"key={key}&image=".encode() + b"A" * 4_000_004)


# --- the answer table, offline ---------------------------------------------------------

CODES: dict[int, Outcome] = {
    237101: Outcome.INVALID_IMAGE,
    237102: Outcome.NO_RESULT,
    10001: Outcome.PROVIDER_UNAVAILABLE,
    10002: Outcome.PROVIDER_UNAVAILABLE,
    10003: Outcome.PROVIDER_UNAVAILABLE,
    10004: Outcome.PROVIDER_UNAVAILABLE,
    10005: Outcome.PROVIDER_UNAVAILABLE,
    10007: Outcome.PROVIDER_UNAVAILABLE,
    10008: Outcome.PROVIDER_UNAVAILABLE,
    10009: Outcome.PROVIDER_UNAVAILABLE,
    10011: Outcome.RATE_LIMITED,
    10012: Outcome.PROVIDER_UNAVAILABLE,  # 请求超过次数限制: the key's calls are spent
    10013: Outcome.PROVIDER_UNAVAILABLE,
    10014: Outcome.TRANSIENT,
    10020: Outcome.TRANSIENT,
    10021: Outcome.PROVIDER_UNAVAILABLE,
    999999: Outcome.TRANSIENT,  # not in any table: retried, code kept
}


def _outcome(vendor: Vendor, code: int | str) -> Result:
    return vendor.result({"reason": "m", "result": None, "error_code": code})


@pytest.mark.parametrize("code", sorted(CODES))
def test_error_code_table(vendor: Vendor, code: int) -> None:
    result = _outcome(vendor, code)
    assert result.outcome is CODES[code]
    assert result.vendor_code == str(code)
    assert result.billed is False  # Juhe bills error_code 0 only
    assert result.raw == {"reason": "m", "result": None, "error_code": code}
    if isinstance(result, JobError):
        assert (result.http_status, result.provider, result.message) == (200, NAME, "m")
    assert _outcome(vendor, str(code)).outcome is CODES[code]  # a code sent as a string


def test_every_documented_code_is_tested_and_over_loopback(vendor: Vendor) -> None:
    assert set(ERRORS) | set(SYSTEM_ERRORS) <= set(CODES)
    documented = [c for c in CODES if c != 999999]

    async def scenario() -> list[Result]:
        async with vendor.loopback(vendor.settings(throttle=False)) as lb:
            return list(
                await asyncio.gather(*(lb.call(prepared({"error": c})) for c in documented))
            )

    results = asyncio.run(scenario())
    assert {c: r.outcome for c, r in zip(documented, results, strict=True)} == {
        c: CODES[c] for c in documented
    }


# The doc's example, verbatim (its line breaks inside "description" included).
DOC_EXAMPLE = """{
    "reason": "success",
    "result": {
        "data": [
            {
                "score": 0.66788327693939,
                "year": "2015-2017",
                "baike_info": {
                    "baike_url": "",
                    "image_url": "",
                    "description": ""
                },
                "name": "奥迪_A4"
            },
            {
                "score": 0.17167422175407,
                "year": "2017",
                "baike_info": {
                    "baike_url": "http://baike.baidu.com/item/%E5%A5%A5%E8%BF%AAA4L/7771482",
                    "image_url":
"http://imgsrc.baidu.com/baike/pic/item/8694a4c27d1ed21b1000b2b4a16eddc450da3f91.jpg",
                    "description": "奥迪A4L是奥迪公司2008年11月16日正式发布的一款车型，全新奥迪A4L采用了全新
的外观和底盘设计，在正面和后面该车与奥迪A5十分相似。参考价格27.28-57.81万。外观时尚动感，线条流畅；
内饰做工精致，配置不错；音响效果不错；空间宽敞实用，舒适性不错；品牌经典。"
                },
                "name": "奥迪A4L"
            },
            {
                "score": 0.064318783581257,
                "year": "2003",
                "baike_info": {
                    "baike_url": "",
                    "image_url": "",
                    "description": ""
                },
                "name": "奥迪_S4"
            }
        ],
        "color": "黄色"
    },
    "error_code": 0



}"""  # noqa: E501


def test_doc_example(vendor: Vendor) -> None:
    result = vendor.answer(DOC_EXAMPLE)
    assert (result.outcome, result.billed, result.request_id) == (Outcome.SUCCEEDED, True, None)
    assert result.readings == [
        CarModelCandidate(1, "奥迪_A4", "2015-2017", 0.66788327693939, color="黄色"),
        CarModelCandidate(
            rank=2,
            name="奥迪A4L",
            year="2017",
            score=0.17167422175407,
            baike_url="http://baike.baidu.com/item/%E5%A5%A5%E8%BF%AAA4L/7771482",
            image_url="http://imgsrc.baidu.com/baike/pic/item/"
            "8694a4c27d1ed21b1000b2b4a16eddc450da3f91.jpg",
            description="奥迪A4L是奥迪公司2008年11月16日正式发布的一款车型，全新奥迪A4L采用了全新\n"
            "的外观和底盘设计，在正面和后面该车与奥迪A5十分相似。参考价格27.28-57.81万。外观时尚动感，"
            "线条流畅；\n内饰做工精致，配置不错；音响效果不错；空间宽敞实用，舒适性不错；品牌经典。",
            color="黄色",
        ),
        CarModelCandidate(3, "奥迪_S4", "2003", 0.064318783581257, color="黄色"),
    ]


@pytest.mark.parametrize(
    ("result", "readings"),
    [
        (None, 0),
        ({}, 0),
        ({"data": [], "color": "白色"}, 0),
        ({"data": [{"name": ""}, "junk", {"score": 0.5}], "color": "白色"}, 0),
        ({"data": [{"name": "X", "score": "nan?", "baike_info": "none"}]}, 1),
    ],
)
def test_thin_answers(vendor: Vendor, result: Any, readings: int) -> None:
    got = vendor.answer({"reason": "success", "result": result, "error_code": 0})
    assert len(got.readings) == readings
    assert got.outcome is (Outcome.SUCCEEDED if readings else Outcome.NO_RESULT)
    assert got.billed is True
    if readings:
        assert got.readings == [CarModelCandidate(rank=1, name="X")]


@pytest.mark.parametrize(
    ("status", "body", "error", "billed"),
    [
        (502, b"Bad Gateway", ServerError, False),
        (429, b"", RateLimited, False),
        (403, b"", ProviderUnavailable, False),
        (413, b"", VendorRejectedImage, False),
        (400, b"", BadResponse, False),
        (200, b"<html>", BadResponse, False),
        (200, b"[1]", BadResponse, False),
        (200, b'{"reason": "success", "result": {}}', BadResponse, False),
        (200, b'{"error_code": true}', BadResponse, False),
        (200, b'{"error_code": 0, "result": "text"}', BadResponse, True),
        (200, b'{"error_code": 0, "result": {"data": {}}}', BadResponse, True),
    ],
)
def test_bad_answers(
    vendor: Vendor, status: int, body: bytes, error: type[JobError], billed: bool
) -> None:
    with pytest.raises(error) as caught:
        vendor.answer(body, status)
    assert caught.value.http_status == status
    assert caught.value.billed is billed


def test_raw_never_holds_the_key(vendor: Vendor) -> None:
    echo = {
        "reason": f"bad key {KEY}",
        "result": {"key": KEY, "data": [{"name": f"n{KEY}", "appkey": 1}], "keep": [KEY]},
        "error_code": 0,
    }
    result = vendor.stored(echo)
    assert isinstance(result, VendorAnswer)
    text = json.dumps(result.raw, ensure_ascii=False) + repr(result)
    assert KEY not in text
    assert result.raw["result"]["keep"] == ["***"]
    assert "key" not in result.raw["result"]  # fields named like a credential: dropped
    refused = vendor.stored(dict(echo, error_code=10001, result=None))
    assert isinstance(refused, ProviderUnavailable)
    assert KEY not in str(refused) + json.dumps(refused.raw, ensure_ascii=False)
