"""Simulator of Juhe verify_carlicense: ``POST /verify_carlicense/query`` and ``/verify``.

``/query`` reads a form-urlencoded ``key`` + ``file`` (base64); ``/verify`` a multipart
``key`` + ``file`` upload (a part with a filename, as Spring's MultipartFile requires).
Checks, in order: the method (271104 只支持POST方法), the key (10001), ``file`` present
and not empty (271102), its size (base64 <= 4,000,000, or the upload's base64 length:
the doc states no limit, so carDetect's is applied), strict base64, the key's daily
quota (10012), then the image must decode (271103 识别失败). Then the directive, then
what the image shows (:mod:`worker.simulator.scene`): the largest plate drawn in it, as
the full ``res`` list in the doc's shape and order (number and colour as drawn, the
plate's box where it is drawn, the rest deterministic per plate; a low confidence for the
seeded warning share), with a fresh ``orderid`` per call. No plate (or ``{"empty":
true}``) answers error_code 0 with an empty ``res`` (no_result, billed); a plate too
blurred to read, or the seeded recognition failure, 271103.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from aiohttp import web

from worker.config import ProviderSettings
from worker.providers.juhe_plate import JuhePlateSettings
from worker.simulator import juhe
from worker.simulator.base import Call, Flaw
from worker.simulator.directives import Directive
from worker.simulator.scene import Plate, Scene
from worker.simulator.synth import Synth

QUERY: Final = "/verify_carlicense/query"
VERIFY: Final = "/verify_carlicense/verify"
NETWORK, EMPTY_FILE, FAILED, POST_ONLY = 271101, 271102, 271103, 271104
MESSAGES: Final = {
    NETWORK: "网络错误",
    EMPTY_FILE: "file参数不可为空",
    FAILED: "识别失败",
    POST_ONLY: "只支持POST方法",
}
PLATE_NO, COLOR, TYPE = "车牌号", "车牌颜色", "车牌类型"
CONFIDENCE, BRIGHTNESS, DIRECTION = "整牌可信度", "亮度评价", "车牌运动方向"
POSITION: Final = "车牌位置(left_top_right_bottom)"
COLOR_CODES: Final = {"蓝": 1, "黑": 2, "黄": 3, "白": 5, "绿": 17}
DRAWN_COLORS: Final = {"blue": "蓝", "yellow": "黄", "green": "绿"}
# Directive keys (canonical, ours, or the vendor's own desc) -> the desc they override.
OVERRIDES: Final = {
    "plate": PLATE_NO,
    "plate_type": TYPE,
    "confidence": CONFIDENCE,
    "brightness": BRIGHTNESS,
    "direction": DIRECTION,
    "box": POSITION,
    **{desc: desc for desc in (PLATE_NO, TYPE, CONFIDENCE, BRIGHTNESS, DIRECTION, POSITION)},
}


def synthesize(plate: Plate, *, blurred: bool = False) -> dict[str, Any]:
    """Every value of one plate as read, keyed by desc: number, colour and box as drawn,
    the rest drawn from the number in one fixed order."""
    s = Synth(plate.number.encode(), salt="juhe_plate")
    confidence = s.rng.randint(30, 59) if blurred else s.rng.randint(60, 99)
    brightness = s.rng.randint(40, 230)
    direction = s.choice((0, 0, 0, 1, 2, 3, 4))
    name = DRAWN_COLORS[plate.color]
    return {
        PLATE_NO: plate.number,
        COLOR: (name, COLOR_CODES[name]),
        TYPE: COLOR_CODES[name],  # the doc's type list is the colour-type list: they agree
        CONFIDENCE: confidence,
        BRIGHTNESS: brightness,
        DIRECTION: direction,
        POSITION: plate.box,
    }


def _override(values: dict[str, Any], key: str, value: Any) -> None:
    if key in ("plate_color", "color"):
        code = COLOR_CODES.get(str(value), values[COLOR][1])
        values[COLOR] = (str(value), code)
    elif key in ("plate_color_code", "color_code"):
        values[COLOR] = (values[COLOR][0], value)
    elif key == "confidence" and isinstance(value, float) and value <= 1:
        values[CONFIDENCE] = round(value * 100)  # canonical confidence is 0..1
    elif key in OVERRIDES:
        values[OVERRIDES[key]] = value


def _entry(desc: str, content: Any) -> dict[str, Any]:
    return {"nID": None, "index": None, "desc": desc, "content": str(content)}


def res_list(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The doc's ``res``: eight {nID, index, desc, content} entries in its order."""
    name, code = values[COLOR]
    box = values[POSITION]
    position = "_".join(str(v) for v in box) if isinstance(box, list | tuple) else box
    return [
        _entry(PLATE_NO, values[PLATE_NO]),
        _entry(COLOR, name),
        _entry(COLOR, code),
        _entry(TYPE, values[TYPE]),
        _entry(CONFIDENCE, values[CONFIDENCE]),
        _entry(BRIGHTNESS, values[BRIGHTNESS]),
        _entry(DIRECTION, values[DIRECTION]),
        _entry(POSITION, position),
    ]


class Sim(juhe.JuheSim):
    provider: ClassVar[str] = "juhe_plate"
    messages: ClassVar[Mapping[int, str]] = MESSAGES
    failed: ClassVar[int] = FAILED
    routes: ClassVar[tuple[tuple[str, str], ...]] = (
        ("POST", QUERY),
        ("POST", VERIFY),
        ("GET", QUERY),
        ("GET", VERIFY),
    )
    default_limit: ClassVar[int] = 10  # undocumented; what a small paid key is sold
    settings_class: ClassVar[type[ProviderSettings]] = JuhePlateSettings
    settings: JuhePlateSettings

    def nothing_found(self, call: Call) -> web.Response:
        return juhe.envelope(0, "操作成功", {"res": [], "orderid": juhe.order_id()})

    def answer(
        self, call: Call, seen: Scene, directive: Directive, flaw: Flaw | None
    ) -> web.Response:
        plate = seen.largest_plate
        if plate is None:
            if "plate" in seen.illegible:
                return juhe.error(FAILED, None, MESSAGES)
            return self.nothing_found(call)
        if flaw is Flaw.FAILURE:
            return juhe.error(FAILED, None, MESSAGES)
        values = synthesize(plate, blurred=flaw is Flaw.WARNING)
        for key, value in directive.fields.items():
            _override(values, key, value)
        return juhe.envelope(0, "操作成功", {"res": res_list(values), "orderid": juhe.order_id()})

    def accept(self, request: web.Request, body: bytes) -> Call:
        if request.method != "POST":
            raise self.refuse(POST_ONLY)
        if request.path == QUERY:
            fields = juhe.form_fields(request, body)
            key = juhe.check_key(self.settings.key, fields.get("key"))
            text = fields.get("file", "")
            if not text:
                raise self.refuse(EMPTY_FILE)
            return Call(key, juhe.decode_b64(text, FAILED))
        parts = juhe.multipart_fields(request, body)
        part = parts.get("key")
        # Like Spring's @RequestParam, the key may come from a plain form as well.
        given = part.data if part is not None else juhe.form_fields(request, body).get("key")
        key = juhe.check_key(self.settings.key, given)
        upload = parts.get("file")
        if upload is None or upload.filename is None or not upload.data:
            raise self.refuse(EMPTY_FILE)  # not a MultipartFile, or an empty one
        if (len(upload.data) + 2) // 3 * 4 > juhe.MAX_B64:
            raise self.refuse(FAILED, "图片大小超过4M")
        return Call(key, upload.data)
