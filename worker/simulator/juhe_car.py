"""Simulator of Juhe carDetect on ``POST /carDetect/index`` (form: ``key``, ``image``).

Checks, in order: the method (the doc's is POST; carDetect lists no "POST only" code, so
another method answers the system code 10007 未知的请求源), the key (10001), the
``image`` field, its size (base64 <= 4,000,000), strict base64, the image itself
(JPEG/PNG/BMP that decodes, sides 15..4096 px); every image refusal answers 237101
识别失败 with a reason saying which check failed. Then the directive, then the answer:
1-5 candidates with descending scores and a body colour, deterministic per image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final
from urllib.parse import quote

from aiohttp import web

from worker.config import ProviderSettings
from worker.providers.juhe_car import JuheCarSettings
from worker.simulator import juhe
from worker.simulator.common import ImageInfo
from worker.simulator.directives import Directive
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
    "大众朗逸", "丰田卡罗拉", "本田雅阁", "别克英朗", "日产轩逸", "大众帕萨特", "奥迪A4L",
    "奥迪_A4", "宝马3系", "奔驰C级", "比亚迪汉", "特斯拉Model 3", "吉利博越", "哈弗H6",
    "长安CS75", "丰田凯美瑞", "本田思域", "大众速腾", "马自达6", "五菱宏光",
)  # fmt: skip
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


def synthesize(image: bytes) -> tuple[list[dict[str, Any]], str, int]:
    """(every model ranked, colour, default count) for ``image``, drawn in one fixed order."""
    s = Synth(image, salt="juhe_car")
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


class Sim(juhe.JuheSim):
    provider: ClassVar[str] = "juhe_car"
    messages: ClassVar[Mapping[int, str]] = MESSAGES
    routes: ClassVar[tuple[tuple[str, str], ...]] = (("POST", PATH), ("GET", PATH))
    default_limit: ClassVar[int] = 10  # undocumented; what a small paid key is sold

    def __init__(self, settings: ProviderSettings) -> None:
        if not isinstance(settings, JuheCarSettings):
            raise TypeError("juhe_car Sim needs JuheCarSettings")
        self.settings = settings

    def answer(self, image: bytes, info: ImageInfo, directive: Directive) -> web.Response:
        if directive.empty:
            return juhe.error(NOT_A_CAR, None, MESSAGES)
        return juhe.envelope(0, "success", self._result(image, directive))

    def checked_image(self, request: web.Request, body: bytes) -> tuple[bytes, ImageInfo]:
        if request.method != "POST":
            raise juhe.Refusal(UNKNOWN_SOURCE)
        fields = juhe.form_fields(request, body)
        juhe.check_key(self.settings.key, fields.get("key"))
        text = fields.get("image", "")
        if not text:
            raise juhe.Refusal(FAILED, "image参数不能为空")
        image = juhe.decode_b64(text, FAILED)
        info = juhe.open_image(image)
        if info is None:
            raise juhe.Refusal(FAILED, "图片格式错误，支持jpg/png/bmp")
        if min(info.width, info.height) < MIN_SIDE or max(info.width, info.height) > MAX_SIDE:
            raise juhe.Refusal(FAILED, "图片尺寸不符合要求，最短边至少15px，最长边最大4096px")
        return image, info

    def _result(self, image: bytes, directive: Directive) -> dict[str, Any]:
        ranked, color, count = synthesize(image)
        data = ranked[: directive.count if directive.count is not None else count]
        for key, value in directive.fields.items():
            if key == "color":
                color = str(value)
            elif data and key in FIRST_FIELDS:
                data[0][FIRST_FIELDS[key]] = value
            elif data and key in BAIKE_FIELDS:
                data[0]["baike_info"][key] = value
        return {"data": data, "color": color}
