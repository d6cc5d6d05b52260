"""The Juhe simulators' own promises: envelope, doc shapes, determinism, directives."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from tests.support.vendors import fake_secret, fake_settings, simulated
from worker.providers.registry import PROVIDERS
from worker.simulator import juhe_car, juhe_plate, scene
from worker.simulator.base import VendorSim
from worker.simulator.directives import make_image, with_directive
from worker.simulator.samples import plate_of, vehicle_photo
from worker.simulator.server import Simulator

NAMES = ["juhe_car", "juhe_plate"]
SETTINGS = fake_settings(NAMES, throttle=False)
KEY = fake_secret("juhe_car", "key")  # Juhe's: both APIs' made-up key (one account)
DOC_DESCS = [
    "车牌号",
    "车牌颜色",
    "车牌颜色",
    "车牌类型",
    "整牌可信度",
    "亮度评价",
    "车牌运动方向",
    "车牌位置(left_top_right_bottom)",
]


async def _post(path: str, fields: dict[str, str]) -> tuple[int, Any]:
    async with simulated(SETTINGS, NAMES) as sim:
        return await sim.plain("POST", path, data=fields)


CAR = vehicle_photo(11, (640, 480))


def _b64(directive: dict[str, Any] | None = None, *, data: bytes | None = None) -> str:
    """A plain image (nothing to read) with ``directive``, or ``data`` with it drawn below."""
    if data is None:
        return base64.b64encode(make_image(directive)).decode()
    return base64.b64encode(with_directive(data, directive) if directive else data).decode()


def test_sims_satisfy_the_contract_and_share_the_server() -> None:
    car = juhe_car.Sim(SETTINGS.provider("juhe_car"))
    plate = juhe_plate.Sim(SETTINGS.provider("juhe_plate"))
    assert isinstance(car, VendorSim)
    assert isinstance(plate, VendorSim)
    assert (car.default_limit, plate.default_limit) == (10, 10)
    # Every registered vendor mounted together: no two claim one route.
    Simulator(SETTINGS, [*dict.fromkeys([*PROVIDERS, *NAMES])])


def test_throttle_and_internal_error_answers_are_200_envelopes() -> None:
    for sim in (
        juhe_car.Sim(SETTINGS.provider("juhe_car")),
        juhe_plate.Sim(SETTINGS.provider("juhe_plate")),
    ):
        answers = (
            (sim.throttled(), 10011),
            (sim.error_in_200(), 10014),
            (sim.quota_exhausted(), 10012),
        )
        for response, code in answers:
            assert response.status == 200
            assert json.loads(response.body) == {  # type: ignore[arg-type]
                "reason": {
                    10011: "当前IP请求超过限制",
                    10012: "请求超过次数限制",
                    10014: "系统内部异常",
                }[code],
                "result": None,
                "error_code": code,
            }


def test_plate_answer_has_the_docs_shape() -> None:
    status, body = asyncio.run(_post(juhe_plate.QUERY, {"key": KEY, "file": _b64(data=CAR)}))
    assert status == 200
    assert list(body) == ["reason", "result", "error_code"]
    assert (body["reason"], body["error_code"]) == ("操作成功", 0)
    assert list(body["result"]) == ["res", "orderid"]
    res = body["result"]["res"]
    assert [entry["desc"] for entry in res] == DOC_DESCS
    assert all(list(e) == ["nID", "index", "desc", "content"] for e in res)
    assert all(
        e["nID"] is None and e["index"] is None and isinstance(e["content"], str) for e in res
    )
    assert res[0]["content"] == plate_of(11)  # the plate drawn, in its colour
    assert (res[1]["content"], res[2]["content"], res[3]["content"]) == ("蓝", "1", "1")
    left, top, right, bottom = map(int, res[7]["content"].split("_"))
    assert 640 * 0.3 < left < right < 640 * 0.7  # where it is drawn
    assert 0 < top < bottom < 480


def test_nothing_drawn_answers_each_apis_nothing_found() -> None:
    async def scenario() -> list[tuple[int, Any]]:
        no_plate = vehicle_photo(12, (640, 480), plate=False)
        return [
            await _post(juhe_plate.QUERY, {"key": KEY, "file": _b64(data=no_plate)}),
            await _post(juhe_car.PATH, {"key": KEY, "image": _b64(data=no_plate)}),
            await _post(juhe_car.PATH, {"key": KEY, "image": _b64()}),
        ]

    (_, plate), (_, car), (_, blank) = asyncio.run(scenario())
    assert (plate["error_code"], plate["result"]["res"]) == (0, [])  # no plate: billed, empty
    assert car["error_code"] == 0  # the car is still there
    assert car["result"]["data"]
    assert (blank["error_code"], blank["reason"]) == (237102, "非车类或识别不到信息")


def test_car_answer_shape_scores_and_count_cap() -> None:
    async def scenario() -> list[tuple[int, Any]]:
        return [
            await _post(juhe_car.PATH, {"key": KEY, "image": _b64(data=CAR)}),
            await _post(juhe_car.PATH, {"key": KEY, "image": _b64({"count": 99}, data=CAR)}),
        ]

    (status, body), (_, many) = asyncio.run(scenario())
    assert status == 200
    assert list(body) == ["reason", "result", "error_code"]
    data = body["result"]["data"]
    assert 1 <= len(data) <= 5
    painted = scene.look(CAR)
    assert not isinstance(painted, scene.Unreadable)
    assert body["result"]["color"] == painted.cars[0].color  # the colour the car is painted
    assert all(list(c) == ["score", "year", "baike_info", "name"] for c in data)
    assert all(list(c["baike_info"]) == ["baike_url", "image_url", "description"] for c in data)
    scores = [c["score"] for c in many["result"]["data"]]
    assert len(scores) == len(juhe_car.MODELS)
    assert scores == sorted(scores, reverse=True)
    assert len({c["name"] for c in many["result"]["data"]}) == len(scores)


def test_directed_errors_keep_code_and_message() -> None:
    async def scenario() -> list[tuple[int, Any]]:
        return [
            await _post(juhe_car.PATH, {"key": KEY, "image": _b64({"error": 10020})}),
            await _post(juhe_car.PATH, {"key": KEY, "image": _b64({"error": "237101"})}),
            await _post(juhe_plate.QUERY, {"key": KEY, "file": _b64({"error": 271101})}),
            await _post(
                juhe_plate.QUERY, {"key": KEY, "file": _b64({"error": "X1", "message": "m"})}
            ),
        ]

    answers = [body for _, body in asyncio.run(scenario())]
    assert [(a["error_code"], a["reason"], a["result"]) for a in answers] == [
        (10020, "接口维护", None),
        (237101, "识别失败", None),
        (271101, "网络错误", None),
        ("X1", "m", None),
    ]


def test_readings_follow_what_is_drawn_not_the_bytes() -> None:
    """The same car and plate, drawn at another size: the same reading."""
    small, large = vehicle_photo(13, (480, 360)), vehicle_photo(13, (1200, 900))
    seen = [scene.look(data) for data in (small, large)]
    assert not any(isinstance(s, scene.Unreadable) for s in seen)
    (car_a, plate_a), (car_b, plate_b) = [(s.cars[0], s.plates[0]) for s in seen]  # type: ignore[union-attr]
    assert juhe_car.synthesize(car_a.model) == juhe_car.synthesize(car_b.model)
    assert plate_a.number == plate_b.number == plate_of(13)
    assert (
        juhe_plate.synthesize(plate_a)[juhe_plate.CONFIDENCE]
        == juhe_plate.synthesize(plate_b)[juhe_plate.CONFIDENCE]
    )
    assert juhe_car.synthesize(1) != juhe_car.synthesize(2)
