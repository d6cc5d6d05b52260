"""The Tianapi licenseplate simulator, spoken to directly: its checks, codes and answers."""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.support.vendors import Vendor, fake_secret
from worker.config import Settings
from worker.simulator.directives import make_image, with_directive
from worker.simulator.samples import plate_of, side_by_side, vehicle_photo
from worker.simulator.tianapi_plate import Sim

NAME = "tianapi_plate"
KEY = fake_secret(NAME, "key")
PATH = "/licenseplate/index"
IMAGE = vehicle_photo(3, (240, 180), "PNG", plate_width=0.5)  # small enough for a GET
B64 = base64.b64encode(IMAGE).decode()
TWO_CARS = side_by_side(
    vehicle_photo(1, (640, 480)), vehicle_photo(2, (640, 480), plate_color="yellow")
)
pytestmark = pytest.mark.vendor(NAME)


async def _send(
    vendor: Vendor, settings: Settings | None, method: str, **kwargs: Any
) -> tuple[int, Any]:
    async with vendor.loopback(settings) as lb:
        return await lb.plain(method, PATH, **kwargs)


def post(vendor: Vendor, fields: dict[str, str], settings: Settings | None = None) -> Any:
    data = urlencode(fields).encode()
    return post_raw(vendor, io.BytesIO(data) if len(data) > 1 << 20 else data, settings)


def post_raw(vendor: Vendor, data: Any, settings: Settings | None = None) -> Any:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, body = asyncio.run(_send(vendor, settings, "POST", data=data, headers=headers))
    assert status == 200  # Tianapi answers every code with HTTP 200
    return body


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"img": B64}, 240),
        ({"key": "", "img": B64}, 230),
        ({"key": "wrong", "img": B64}, 230),
        ({"key": KEY}, 280),
        ({"key": KEY, "img": ""}, 260),
        ({"key": KEY, "imgurl": ""}, 260),
        ({"key": KEY, "imgurl": "https://example.com/a.jpg"}, 270),
        ({"key": KEY, "img": "not base64!"}, 270),
        ({"key": KEY, "img": "data:image/png;base64," + B64}, 270),  # no data: header
        ({"key": KEY, "img": base64.b64encode(b"GIF89a...").decode()}, 270),
        ({"key": KEY, "img": "A" * 3_000_004}, 290),
    ],
)
def test_refusals(vendor: Vendor, fields: dict[str, str], code: int) -> None:
    body = post(vendor, fields)
    assert body["code"] == code
    assert body["msg"]
    assert "result" not in body


def test_unescaped_plus_is_refused_like_the_real_form_decoder(vendor: Vendor) -> None:
    b64 = base64.b64encode(b"\xfb\xef" * 30).decode()  # "++" runs
    assert "+" in b64
    assert post_raw(vendor, f"key={KEY}&img={b64}".encode())["code"] == 270


def test_no_key_configured_refuses_every_key(vendor: Vendor) -> None:
    assert post(vendor, {"key": KEY, "img": B64}, vendor.settings(key=None))["code"] == 230


def test_success_envelope_post_get_and_multipart(vendor: Vendor) -> None:
    settings = vendor.settings()
    result = {"color": "blue", "number": plate_of(3)}  # the plate drawn
    success = {"code": 200, "msg": "success", "result": result}
    assert post(vendor, {"key": KEY, "img": B64}) == success
    assert asyncio.run(_send(vendor, settings, "GET", params={"key": KEY, "img": B64})) == (
        200,
        success,
    )
    form = aiohttp.FormData()
    form.add_field("key", KEY)
    form.add_field("img", IMAGE, filename="car.png", content_type="image/png")
    assert asyncio.run(_send(vendor, settings, "POST", data=form)) == (200, success)
    b64_form = aiohttp.FormData(default_to_multipart=True)  # img as a text part
    b64_form.add_field("key", KEY)
    b64_form.add_field("img", B64)
    assert asyncio.run(_send(vendor, settings, "POST", data=b64_form)) == (200, success)


def _plates(vendor: Vendor, image: bytes) -> Any:
    return post(vendor, {"key": KEY, "img": base64.b64encode(image).decode()})


def test_every_plate_drawn_is_read_left_to_right(vendor: Vendor) -> None:
    body = _plates(vendor, TWO_CARS)
    assert body["result"] == {
        "list": [
            {"color": "blue", "number": plate_of(1)},
            {"color": "yellow", "number": plate_of(2)},
        ]
    }
    green = vehicle_photo(4, (640, 480), plate="粤BD12345", plate_color="green")
    assert _plates(vendor, green)["result"] == {"color": "green", "number": "粤BD12345"}


def test_nothing_drawn_is_250(vendor: Vendor) -> None:
    for image in (make_image(), vehicle_photo(5, (640, 480), plate=False)):
        assert _plates(vendor, image) == {"code": 250, "msg": "数据返回为空"}


def test_directives(vendor: Vendor) -> None:
    directed = with_directive(TWO_CARS, {"plate": "京A12345", "plate_color": "white"})
    first, second = _plates(vendor, directed)["result"]["list"]
    assert first == {"color": "white", "number": "京A12345"}
    assert second == {"color": "yellow", "number": plate_of(2)}
    only = _plates(vendor, with_directive(TWO_CARS, {"count": 1}))["result"]
    assert only == {"color": "blue", "number": plate_of(1)}
    assert _plates(vendor, make_image({"error": 150})) == {"code": 150, "msg": "API可用次数不足"}
    empty = _plates(vendor, with_directive(IMAGE, {"empty": True}))
    assert empty == {"code": 250, "msg": "数据返回为空"}


def test_throttle_and_error_in_200_answers(vendor: Vendor) -> None:
    sim = Sim(vendor.block())
    assert sim.throttled().status == 200
    assert sim.throttled().text == '{"code": 130, "msg": "API调用频率超限"}'
    assert sim.error_in_200().text == '{"code": 100, "msg": "内部服务器错误"}'
    with pytest.raises(TypeError):
        Sim(vendor.settings().provider("tencent_vehicle_license"))
