"""Simulator of Juhe carDetect on ``POST /carDetect/index`` (form: ``key``, ``image``).

Checks, in order: the method (the doc's is POST; carDetect lists no "POST only" code, so
another method answers the system code 10007 未知的请求源), the key (10001), the
``image`` field, its size (base64 <= 4,000,000), strict base64, the key's daily quota
(10012), the image itself (JPEG/PNG/BMP that decodes, sides 15..4096 px); every image
refusal answers 237101 识别失败 with a reason saying which check failed. Then the
directive, then what the image shows (:mod:`worker.simulator.scene`): no car -> 237102
非车类或识别不到信息; a car whose badge is illegible, or the seeded recognition failure
-> 237101; else the largest car ("若图片中有多个车辆，则识别目标最大的车辆"): 1-5
candidates with descending scores (lower for the seeded warning share) and the body
colour the car is painted, deterministic per car.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final
from urllib.parse import quote

from aiohttp import web

from worker.config import ProviderSettings
from worker.providers.juhe_car import JuheCarSettings
from worker.simulator import juhe
from worker.simulator.base import Call, Flaw
from worker.simulator.directives import Directive
from worker.simulator.scene import Car, Scene
from worker.simulator.synth import Synth

PATH: Final = "/carDetect/index"
FAILED: Final = 237101
NOT_A_CAR: Final = 237102
MESSAGES: Final = {FAILED: "识别失败", NOT_A_CAR: "非车类或识别不到信息"}
UNKNOWN_SOURCE: Final = 10007
MIN_SIDE, MAX_SIDE = 15, 4096
MAX_DEFAULT_CANDIDATES: Final = 5
# Names in the vendor's style (brand + model, sometimes brand_model).
MODELS: Final = (
    "大众朗逸",
    "丰田卡罗拉",
    "本田雅阁",
    "别克英朗",
    "日产轩逸",
    "大众帕萨特",
    "奥迪A4L",
    "奥迪_A4",
    "宝马3系",
    "奔驰C级",
    "比亚迪汉",
    "特斯拉Model 3",
    "吉利博越",
    "哈弗H6",
    "长安CS75",
    "丰田凯美瑞",
    "本田思域",
    "大众速腾",
    "马自达6",
    "五菱宏光",
)
COLORS: Final = ("黄色", "白色", "黑色", "银色", "红色", "蓝色", "灰色", "绿色", "棕色")
# Directive keys for the best candidate (the canonical ones and the vendor's own).
FIRST_FIELDS: Final = {"name": "name", "year": "year", "score": "score", "confidence": "score"}
BAIKE_FIELDS: Final = ("baike_url", "image_url", "description")


def _baike(s: Synth, name: str) -> dict[str, str]:
    """Half the candidates have a 百科 entry, the rest empty strings (as in the doc)."""
    filled = s.rng.random() < 0.5
    picture = "".join(s.rng.choice("0123456789abcdef") for _ in range(40))
    if not filled:
        return {"baike_url": "", "image_url": "", "description": ""}
    return {
        "baike_url": f"http://baike.baidu.com/item/{quote(name)}/{s.digits(7)}",
        "image_url": f"http://imgsrc.baidu.com/baike/pic/item/{picture}.jpg",
        "description": f"{name}是一款广受欢迎的车型，外观时尚动感，空间宽敞实用。",
    }


def synthesize(model: int) -> tuple[list[dict[str, Any]], str, int]:
    """(every model ranked, a colour, default count) for car ``model``, drawn in one fixed
    order (the colour of a car read from an image is its paint's)."""
    s = Synth(model.to_bytes(4, "big"), salt="juhe_car")
    count = s.rng.randint(1, MAX_DEFAULT_CANDIDATES)
    names = s.rng.sample(MODELS, len(MODELS))
    score = s.rng.uniform(0.4, 0.99)
    ranked = []
    for name in names:
        start, span = s.rng.randint(2005, 2022), s.choice((0, 0, 1, 2, 3))
        ranked.append(
            {
                "score": round(score, 14),
                "year": str(start) if span == 0 else f"{start}-{start + span}",
                "baike_info": _baike(s, name),
                "name": name,
            }
        )
        score *= s.rng.uniform(0.1, 0.6)
    return ranked, s.choice(COLORS), count


def _area(car: Car) -> int:
    return (car.box[2] - car.box[0]) * (car.box[3] - car.box[1])


class Sim(juhe.JuheSim):
    provider: ClassVar[str] = "juhe_car"
    messages: ClassVar[Mapping[int, str]] = MESSAGES
    failed: ClassVar[int] = FAILED
    routes: ClassVar[tuple[tuple[str, str], ...]] = (("POST", PATH), ("GET", PATH))
    default_limit: ClassVar[int] = 10  # undocumented; what a small paid key is sold
    settings_class: ClassVar[type[ProviderSettings]] = JuheCarSettings
    settings: JuheCarSettings

    def nothing_found(self, call: Call) -> web.Response:
        return juhe.error(NOT_A_CAR, None, MESSAGES)

    def accept(self, request: web.Request, body: bytes) -> Call:
        if request.method != "POST":
            raise self.refuse(UNKNOWN_SOURCE)
        fields = juhe.form_fields(request, body)
        key = juhe.check_key(self.settings.key, fields.get("key"))
        text = fields.get("image", "")
        if not text:
            raise self.refuse(FAILED, "image参数不能为空")
        return Call(key, juhe.decode_b64(text, FAILED))

    def check_scene(self, seen: Scene) -> web.Response | None:
        if min(seen.width, seen.height) < MIN_SIDE or max(seen.width, seen.height) > MAX_SIDE:
            return juhe.error(FAILED, "图片尺寸不符合要求，最短边至少15px，最长边最大4096px", {})
        return None

    def answer(
        self, call: Call, seen: Scene, directive: Directive, flaw: Flaw | None
    ) -> web.Response:
        if not seen.cars:
            if "car" in seen.illegible:
                return juhe.error(FAILED, None, MESSAGES)
            return self.nothing_found(call)
        if flaw is Flaw.FAILURE:
            return juhe.error(FAILED, None, MESSAGES)
        car = max(seen.cars, key=_area)
        return juhe.envelope(0, "success", self._result(car, directive, flaw))

    def _result(self, car: Car, directive: Directive, flaw: Flaw | None) -> dict[str, Any]:
        ranked, _drawn, count = synthesize(car.model)
        data = ranked[: directive.count if directive.count is not None else count]
        if flaw is Flaw.WARNING:  # a poor view of the car: the vendor is less sure
            for candidate in data:
                candidate["score"] = round(candidate["score"] * 0.4, 14)
        color = car.color
        for key, value in directive.fields.items():
            if key == "color":
                color = str(value)
            elif data and key in FIRST_FIELDS:
                data[0][FIRST_FIELDS[key]] = value
            elif data and key in BAIKE_FIELDS:
                data[0]["baike_info"][key] = value
        return {"data": data, "color": color}
