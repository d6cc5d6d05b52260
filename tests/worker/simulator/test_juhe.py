"""The Juhe simulators' own promises: envelope, doc shapes, determinism, directives."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from tests.support.vendors import fake_secret, fake_settings, simulated
from worker.providers.registry import PROVIDERS
from worker.simulator import juhe_car, juhe_plate
from worker.simulator.base import VendorSim
from worker.simulator.directives import make_image
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


def _b64(directive: dict[str, Any] | None = None, **kwargs: Any) -> str:
    return base64.b64encode(make_image(directive, **kwargs)).decode()


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
        for response, code in ((sim.throttled(), 10012), (sim.error_in_200(), 10014)):
            assert response.status == 200
            assert json.loads(response.body) == {  # type: ignore[arg-type]
                "reason": {10012: "请求超过次数限制", 10014: "系统内部异常"}[code],
                "result": None,
                "error_code": code,
            }


def test_plate_answer_has_the_docs_shape() -> None:
    status, body = asyncio.run(_post(juhe_plate.QUERY, {"key": KEY, "file": _b64()}))
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
    assert res[2]["content"].isdigit()
    assert len(res[7]["content"].split("_")) == 4


def test_car_answer_shape_scores_and_count_cap() -> None:
    async def scenario() -> list[tuple[int, Any]]:
        return [
            await _post(juhe_car.PATH, {"key": KEY, "image": _b64()}),
            await _post(juhe_car.PATH, {"key": KEY, "image": _b64({"count": 99})}),
        ]

    (status, body), (_, many) = asyncio.run(scenario())
    assert status == 200
    assert list(body) == ["reason", "result", "error_code"]
    data = body["result"]["data"]
    assert 1 <= len(data) <= 5
    assert body["result"]["color"] in juhe_car.COLORS
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


def test_syntheses_are_deterministic_and_salted() -> None:
    image = make_image()
    assert juhe_car.synthesize(image) == juhe_car.synthesize(image)
    assert juhe_plate.synthesize(image, 64, 48) == juhe_plate.synthesize(image, 64, 48)
    assert juhe_car.synthesize(image) != juhe_car.synthesize(make_image(color=(0, 0, 0)))
