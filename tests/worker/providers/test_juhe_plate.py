"""The Juhe verify_carlicense adapter (/query and /verify): over loopback, and offline."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode

import aiohttp
import pytest

from tests.support.vendors import Result, Vendor, fake_secret, prepared
from worker.config import Settings
from worker.errors import (
    BadResponse,
    ConfigError,
    InvalidImage,
    JobError,
    Outcome,
    ProviderUnavailable,
    RateLimited,
    ServerError,
    Transient,
    VendorRejectedImage,
)
from worker.image_limits import PreparedImage
from worker.providers.base import PlateReading, Provider, VendorAnswer
from worker.providers.juhe import SYSTEM_ERRORS
from worker.providers.juhe_plate import ERRORS
from worker.providers.registry import get_provider
from worker.simulator import scene
from worker.simulator.directives import make_image
from worker.simulator.samples import plate_of, side_by_side, vehicle_photo

NAME = "juhe_plate"
KEY = fake_secret(NAME, "key")
MODES = ("base64", "multipart")
Mode = Literal["base64", "multipart"]
pytestmark = pytest.mark.vendor(NAME)
CAR = vehicle_photo(31, (640, 480))
OTHER_CAR = vehicle_photo(32, (640, 480), plate_color="yellow")


# --- the contract and the requests -----------------------------------------------------


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
    assert cred == vendor.adapter(mode="multipart").credential_id()
    assert KEY not in cred
    assert KEY[:6] not in cred
    assert vendor.adapter(key="another-key").credential_id() != cred
    assert vendor.adapter(key=None).credential_id() == "unset"


def test_query_request_is_the_docs_form(vendor: Vendor) -> None:
    image = prepared()
    request = vendor.adapter().build_request(image, {})
    assert (request.method, request.url) == ("POST", "http://apis.juhe.cn/verify_carlicense/query")
    assert request.headers == {"Content-Type": "application/x-www-form-urlencoded"}
    assert request.multipart is None
    body = request.body or b""
    assert body == urlencode({"key": KEY, "file": image.b64.decode()}).encode()
    assert parse_qs(body.decode()) == {"key": [KEY], "file": [image.b64.decode()]}
    assert KEY not in repr(request)


@pytest.mark.parametrize(("fmt", "filename"), [("PNG", "image.png"), ("JPEG", "image.jpg")])
def test_verify_request_is_the_docs_multipart(vendor: Vendor, fmt: str, filename: str) -> None:
    image = prepared(fmt=fmt)
    request = vendor.adapter(mode="multipart").build_request(image, {})
    assert (request.method, request.url) == ("POST", "http://apis.juhe.cn/verify_carlicense/verify")
    assert request.body is None
    assert "Content-Type" not in request.headers  # aiohttp adds the boundary
    assert request.multipart == (
        ("key", KEY, None, None),
        ("file", image.data, filename, image.mime),
    )
    assert KEY not in repr(request)


def test_base_url_with_a_trailing_slash(vendor: Vendor) -> None:
    provider = vendor.adapter(base_url="http://h/verify_carlicense/")
    assert provider.build_request(prepared(), {}).url == "http://h/verify_carlicense/query"


def test_missing_key_options_and_size_are_refused_before_calling(vendor: Vendor) -> None:
    for mode in MODES:
        with pytest.raises(ConfigError, match="VREC_JUHE_PLATE__KEY"):
            vendor.adapter(key=None, mode=mode).build_request(prepared(), {})
        with pytest.raises(InvalidImage, match="over 4000000"):
            vendor.adapter(mode=mode).build_request(prepared(data=b"x" * 3_000_003), {})
    with pytest.raises(ConfigError, match="unknown option"):
        vendor.adapter().build_request(prepared(), {"mode": "multipart"})


# --- over loopback, both modes ---------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_success_is_deterministic_per_image(vendor: Vendor, mode: Mode) -> None:
    async def scenario() -> list[Result]:
        async with vendor.loopback(vendor.settings(mode=mode)) as lb:
            images = [
                prepared(data=CAR),
                prepared(data=CAR),
                prepared(data=OTHER_CAR),
                prepared(data=vehicle_photo(31, (640, 480), "PNG")),
            ]
            return [await lb.call(image) for image in images]

    first, again, other, jpeg = asyncio.run(scenario())
    for result in (first, again, other, jpeg):
        assert isinstance(result, VendorAnswer), result
        assert result.outcome is Outcome.SUCCEEDED
        assert result.billed is True
        assert result.request_id is not None
        assert result.request_id.startswith("JH")
        assert len(result.request_id) == 26
    assert first.request_id != again.request_id
    assert first.readings == again.readings  # type: ignore[union-attr]
    assert first.readings != other.readings  # type: ignore[union-attr]
    (reading,) = first.readings  # type: ignore[union-attr]
    assert isinstance(reading, PlateReading)
    assert reading.plate_no == plate_of(31)  # the plate drawn
    assert (reading.color, reading.color_code, reading.plate_type) == ("蓝", 1, 1)
    assert reading.confidence is not None
    assert 0.6 <= reading.confidence < 1
    assert reading.box is not None
    assert len(reading.box) == 4
    assert reading.brightness is not None
    assert reading.direction in range(5)


@pytest.mark.parametrize("mode", MODES)
def test_field_overrides(vendor: Vendor, mode: Mode) -> None:
    directive = {"plate": "粤TNT444", "plate_color": "黄", "confidence": 0.79, "box": [1, 2, 3, 4]}
    result = vendor.one(prepared(directive, data=CAR), vendor.settings(mode=mode))
    assert isinstance(result, VendorAnswer), result
    assert result.readings == [
        PlateReading(
            position=0,
            plate_no="粤TNT444",
            color="黄",
            color_code=3,
            plate_type=result.readings[0].plate_type,  # type: ignore[union-attr]
            confidence=0.79,
            box=[1, 2, 3, 4],
            brightness=result.readings[0].brightness,  # type: ignore[union-attr]
            direction=result.readings[0].direction,  # type: ignore[union-attr]
        )
    ]


@pytest.mark.parametrize("mode", MODES)
def test_empty_is_a_billed_no_result(vendor: Vendor, mode: Mode) -> None:
    result = vendor.one(prepared({"empty": True}), vendor.settings(mode=mode))
    assert isinstance(result, VendorAnswer), result
    assert (result.outcome, result.billed, result.readings) == (Outcome.NO_RESULT, True, [])
    assert result.request_id is not None


def test_what_the_image_shows_decides(vendor: Vendor) -> None:
    """The largest plate drawn, its colour and box as drawn; none: a billed empty answer;
    one too blurred to read, or the seeded failure: 271103; the seeded warning share: a
    lower confidence."""
    yellow = vendor.one(prepared(data=OTHER_CAR))
    (reading,) = yellow.readings  # type: ignore[union-attr]
    assert isinstance(reading, PlateReading)
    assert (reading.plate_no, reading.color, reading.color_code) == (plate_of(32), "黄", 3)
    seen = scene.look(OTHER_CAR)
    assert not isinstance(seen, scene.Unreadable)
    assert reading.box == list(seen.plates[0].box)
    pair = side_by_side(vehicle_photo(33, (320, 240)), CAR)
    assert vendor.one(prepared(data=pair)).readings[0].plate_no == plate_of(31)  # type: ignore[union-attr]
    for data in (make_image(), vehicle_photo(34, (640, 480), plate=False)):
        none = vendor.one(prepared(data=data))
        assert (none.outcome, none.billed, none.readings) == (Outcome.NO_RESULT, True, [])  # type: ignore[union-attr]
    blurred = vendor.one(prepared(data=vehicle_photo(35, (640, 480), plate_width=0.07)))
    assert (blurred.outcome, blurred.vendor_code) == (Outcome.INVALID_IMAGE, "271103")
    failing = vendor.one(prepared(data=CAR), vendor.settings(failure_rate=1.0))
    assert (failing.outcome, failing.vendor_code) == (Outcome.INVALID_IMAGE, "271103")
    unsure = vendor.one(prepared(data=CAR), vendor.settings(warning_rate=1.0))
    assert unsure.readings[0].confidence < 0.6  # type: ignore[union-attr,operator]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "image",
    [
        prepared(data=b"GIF89a not really an image"),
        prepared(data=make_image()[:60]),
        prepared(data=make_image(fmt="GIF")),
    ],
    ids=["not-image", "truncated", "gif"],
)
def test_images_the_vendor_cant_read_are_invalid(
    vendor: Vendor, mode: Mode, image: PreparedImage
) -> None:
    result = vendor.one(image, vendor.settings(mode=mode))
    assert isinstance(result, VendorRejectedImage), result
    assert result.vendor_code == "271103"
    assert result.billed is False


@pytest.mark.parametrize("mode", MODES)
def test_rate_limited_when_over_the_simulators_limit(vendor: Vendor, mode: Mode) -> None:
    settings = vendor.settings(mode=mode, limits={NAME: 2})

    async def scenario() -> list[Result]:
        async with vendor.loopback(settings) as lb:
            return list(await asyncio.gather(*(lb.call(prepared(data=CAR)) for _ in range(6))))

    limited = [r for r in asyncio.run(scenario()) if isinstance(r, RateLimited)]
    assert len(limited) == 4
    assert all(r.vendor_code == "10011" and not r.billed for r in limited)


@pytest.mark.parametrize("mode", MODES)
def test_wrong_or_unconfigured_key_is_provider_unavailable(vendor: Vendor, mode: Mode) -> None:
    async def scenario(settings: Settings, key: str) -> Result:
        async with vendor.loopback(settings) as lb:
            return await lb.call(prepared(), adapter=lb.adapter(key=key))

    results = [
        asyncio.run(scenario(vendor.settings(mode=mode), "not-the-key")),
        asyncio.run(scenario(vendor.settings(mode=mode, key=None), KEY)),
    ]
    for result in results:
        assert isinstance(result, ProviderUnavailable), result
        assert result.vendor_code == "10001"


def test_large_upload_within_the_limit(vendor: Vendor) -> None:
    # Under 1 MiB: worker.http sends multipart bytes as they are (see the report on >1 MiB).
    data = prepared({"plate": "京A00001"}, data=CAR).data + bytes(range(256)) * 3_000
    for mode in MODES:
        result = vendor.one(prepared(data=data), vendor.settings(mode=mode))
        assert isinstance(result, VendorAnswer), result
        assert result.readings[0].plate_no == "京A00001"  # type: ignore[union-attr]


def test_hand_made_requests_get_the_docs_codes(vendor: Vendor) -> None:
    png = make_image()
    b64 = base64.b64encode(png).decode()

    def upload(key: str | None, data: bytes, filename: str | None = "a.png") -> aiohttp.FormData:
        form = aiohttp.FormData()
        if key is not None:
            form.add_field("key", key)
        form.add_field("file", io.BytesIO(data), filename=filename, content_type="image/png")
        return form

    async def scenario() -> list[Result]:
        async with vendor.loopback(vendor.settings(throttle=False)) as lb:
            return [
                await lb.raw("GET", "/query", params={"key": KEY}),
                await lb.raw("GET", "/verify"),
                await lb.raw("POST", "/query", data={"file": b64}),  # no key
                await lb.raw("POST", "/query", data={"key": KEY}),  # no file
                await lb.raw("POST", "/query", data={"key": KEY, "file": ""}),
                await lb.raw("POST", "/query", data=_large_form(), headers=_FORM),
                await lb.raw("POST", "/verify", data=upload(None, png)),
                await lb.raw("POST", "/verify", data=upload(KEY, b"")),
                await lb.raw("POST", "/verify", data={"key": KEY, "file": b64}),  # not a file
                await lb.raw("POST", "/verify", data=upload(KEY, b"\0" * 3_000_001)),
                await lb.raw("POST", "/query", data={"key": KEY, "file": b64}),  # right
                await lb.raw("POST", "/verify", data=upload(KEY, png)),  # right
            ]

    codes = [getattr(r, "vendor_code", None) for r in asyncio.run(scenario())]
    assert codes == [
        "271104",
        "271104",
        "10001",
        "271102",
        "271102",
        "271103",
        "10001",
        "271102",
        "271102",
        "271103",
        None,
        None,
    ]


_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _large_form() -> io.BytesIO:
    return io.BytesIO(f"key={KEY}&file=".encode() + b"A" * 4_000_004)


# --- the answer table, offline ---------------------------------------------------------

CODES: dict[int, type[JobError]] = {
    271101: Transient,
    271102: VendorRejectedImage,
    271103: VendorRejectedImage,
    271104: ProviderUnavailable,
    **{code: ProviderUnavailable for code in (10001, 10002, 10003, 10004, 10005, 10007)},
    **{code: ProviderUnavailable for code in (10008, 10009, 10013, 10021)},
    10011: RateLimited,
    10012: ProviderUnavailable,  # 请求超过次数限制: the key's calls are spent
    10014: ServerError,
    10020: ServerError,
    237102: Transient,  # carDetect's no-result code means nothing here: unknown, retried
}


@pytest.mark.parametrize("code", sorted(CODES))
def test_error_code_table(vendor: Vendor, code: int) -> None:
    body = {"reason": "m", "result": {"orderid": "JH1"}, "error_code": code}
    with pytest.raises(JobError) as caught:
        vendor.answer(body)
    error = caught.value
    assert type(error) is CODES[code]
    assert (error.vendor_code, error.http_status, error.request_id) == (str(code), 200, "JH1")
    assert error.billed is False  # Juhe bills error_code 0 only
    assert error.raw == body


def test_every_documented_code_is_tested_and_over_loopback(vendor: Vendor) -> None:
    assert set(ERRORS) | set(SYSTEM_ERRORS) <= set(CODES)

    async def scenario() -> list[Result]:
        async with vendor.loopback(vendor.settings(throttle=False)) as lb:
            return list(await asyncio.gather(*(lb.call(prepared({"error": c})) for c in CODES)))

    results = asyncio.run(scenario())
    assert {c: type(r) for c, r in zip(CODES, results, strict=True)} == CODES


# The /query example, verbatim; a page break splits it into two code blocks.
DOC_QUERY = """```
{
  "reason": "操作成功",
  "result": {
    "res": [
      {
        "nID": null,
        "index": null,
        "desc": "车牌号",
        "content": "粤TNT444"
      },
      {
        "nID": null,
        "index": null,
        "desc": "车牌颜色",
        "content": "蓝"
      },
      {
        "nID": null,
        "index": null,
        "desc": "车牌颜色",
        "content": "1"
      },
      {
        "nID": null,
        "index": null,
        "desc": "车牌类型",
        "content": "1"
      },
      {
        "nID": null,
        "index": null,

```

```
    "desc": "整牌可信度",
    "content": "79"
  },
  {
    "nID": null,
    "index": null,
    "desc": "亮度评价",
    "content": "98"
  },
  {
    "nID": null,
    "index": null,
    "desc": "车牌运动方向",
    "content": "0"
  },
  {
    "nID": null,
    "index": null,
    "desc": "车牌位置(left_top_right_bottom)",
    "content": "273_154_345_173"
  }
],
"orderid": "JH711122051814001466198152"
},
"error_code": 0
}
```"""

# The /verify example, verbatim from its JSON on: the page break closed the first block
# after two entries ("]}}" and no error_code), and the second block resumes mid-entry.
DOC_VERIFY_FIRST = """{
  "reason": "操作成功",
  "result": {
    "res": [
      {
        "nID": null,
        "index": null,
        "desc": "车牌号",
        "content": "粤TNT444"
      },
      {
        "nID": null,
        "index": null,
        "desc": "车牌颜色",
        "content": "蓝"
      }
    ]
  }
}"""
DOC_VERIFY_SECOND = """
        "nID":null,
        "index":null,
        "desc":"车牌颜色",
        "content":"1"
    },
    {
        "nID":null,
        "index":null,
        "desc":"车牌类型",
        "content":"1"
    },
    {
        "nID":null,
        "index":null,
        "desc":"整牌可信度",
        "content":"79"
    },
    {
        "nID":null,
        "index":null,
        "desc":"亮度评价",
        "content":"98"
    },
    {
        "nID":null,
        "index":null,
        "desc":"车牌运动方向",
        "content":"0"
    },
    {
        "nID":null,
        "index":null,
        "desc":"车牌位置(left_top_right_bottom)",
        "content":"273_154_345_173"
    }
    ],
    "orderid":"JH711122051814001466198152"
},
"error_code":0
}"""
DOC_READING = PlateReading(
    position=0,
    plate_no="粤TNT444",
    color="蓝",
    color_code=1,
    plate_type=1,
    confidence=0.79,
    box=[273, 154, 345, 173],
    brightness=98,
    direction=0,
)


def test_doc_query_example(vendor: Vendor) -> None:
    joined = DOC_QUERY.replace("```", "")  # only the page break's fences removed
    result = vendor.answer(joined)
    assert (result.outcome, result.billed) == (Outcome.SUCCEEDED, True)
    assert result.request_id == "JH711122051814001466198152"
    assert result.readings == [DOC_READING]


def test_doc_verify_example(vendor: Vendor) -> None:
    # Rejoined at the break: the first block up to its second entry, then the second block.
    head = DOC_VERIFY_FIRST[: DOC_VERIFY_FIRST.rindex("}\n    ]")]
    result = vendor.answer(head + "},\n{" + DOC_VERIFY_SECOND)
    assert result.request_id == "JH711122051814001466198152"
    assert result.readings == [DOC_READING]


def test_doc_verify_fragment_alone_is_not_trusted(vendor: Vendor) -> None:
    # Without error_code it is not Juhe's envelope: nothing says it succeeded or was billed.
    with pytest.raises(BadResponse, match="no error_code"):
        vendor.answer(DOC_VERIFY_FIRST)


def _res(*pairs: tuple[str, str]) -> dict[str, Any]:
    res = [{"nID": None, "index": None, "desc": d, "content": c} for d, c in pairs]
    return {"reason": "操作成功", "result": {"res": res, "orderid": "JH2"}, "error_code": 0}


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        # Colour code before the name, missing entries, unknown entries, junk values.
        (
            [("车牌颜色", "17"), ("新字段", "x"), ("车牌号", "沪AD12345"), ("车牌颜色", "绿")],
            [PlateReading(0, "沪AD12345", "绿", 17)],
        ),
        (
            [
                ("车牌号", "京A1"),
                ("整牌可信度", "abc"),
                ("车牌位置(left_top_right_bottom)", "1_2_3"),
            ],
            [PlateReading(0, "京A1")],
        ),
        ([("车牌号", "京A1"), ("整牌可信度", "120"), ("亮度评价", "")], [PlateReading(0, "京A1")]),
        ([("车牌号", "京A1"), ("整牌可信度", "99.5")], [PlateReading(0, "京A1", confidence=0.995)]),
        # Two plates: a repeated 车牌号 starts the next one.
        (
            [("车牌号", "京A1"), ("车牌颜色", "蓝"), ("车牌号", "京B2"), ("车牌运动方向", "3")],
            [PlateReading(0, "京A1", "蓝"), PlateReading(1, "京B2", direction=3)],
        ),
        ([("车牌号", ""), ("车牌颜色", "蓝")], []),  # no plate number: no_result
        ([], []),
    ],
)
def test_res_is_read_robustly(
    vendor: Vendor, pairs: list[tuple[str, str]], expected: list[PlateReading]
) -> None:
    result = vendor.answer(_res(*pairs))
    assert result.readings == expected
    assert result.outcome is (Outcome.SUCCEEDED if expected else Outcome.NO_RESULT)
    assert (result.billed, result.request_id) == (True, "JH2")


@pytest.mark.parametrize(
    ("status", "body", "error", "billed"),
    [
        (503, b"Busy", ServerError, False),
        (429, b"", RateLimited, False),
        (404, b"", ProviderUnavailable, False),
        (400, b"", BadResponse, False),
        (200, b"not json", BadResponse, False),
        (200, b'{"error_code": "x"}', BadResponse, False),
        (200, b'{"error_code": 0, "result": []}', BadResponse, True),
        (200, b'{"error_code": 0, "result": {"res": "x"}}', BadResponse, True),
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
    body = _res(("车牌号", f"京{KEY}"), ("key", KEY))
    body["key"] = KEY
    result = vendor.stored(body)
    assert isinstance(result, VendorAnswer)
    assert KEY not in json.dumps(result.raw, ensure_ascii=False) + repr(result)
    assert "key" not in result.raw
