"""Simulator of Tianapi ``licenseplate`` on ``GET|POST /licenseplate/index``.

Parameters are read as a PHP front end reads them: the query string, then a
form-urlencoded or multipart/form-data body (body wins). Checks, in order: ``key``
missing -> 240, empty or not ``VREC_TIANAPI_PLATE__KEY`` -> 230 (no key configured: every
key is wrong); ``img`` missing -> 280 (``imgurl`` alone -> 270, nothing can be fetched
here), empty -> 260, over 3,000,000 base64 characters -> 290; base64 that doesn't decode
(a ``data:`` header, an unescaped ``+`` turned into a space) or bytes that aren't a
JPEG/PNG/BMP -> 270; a decompression bomb -> 290; the key's calls for the day spent
(the ``quotas`` knob) -> 150 API可用次数不足. Then the image's directive, then what it
shows: every plate drawn in it (:mod:`worker.simulator.scene`), left to right; none, or
the seeded recognition failure, -> 250 数据返回为空 (Tianapi bills only code 200). Every
answer is HTTP 200 in ``{"code", "msg"[, "result"]}``.

Answer shape: one plate as ``result{color, number}`` (the doc's field table), several
as ``result{"list": [...]}`` (Tianapi's new-domain wrapper for lists). The adapter
accepts both, and a bare list.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from email import policy
from email.parser import BytesParser
from typing import Any, ClassVar, Final
from urllib.parse import parse_qs

from aiohttp import web

from worker.config import ProviderSettings
from worker.providers.tianapi_plate import TianapiPlateSettings
from worker.simulator.base import Call, Flaw, Refusal, SimBase
from worker.simulator.common import json_answer
from worker.simulator.directives import Directive
from worker.simulator.scene import Scene, Unreadable

NAME: Final = "tianapi_plate"
PATH: Final = "/licenseplate/index"
MAX_B64: Final = 3_000_000  # "图片大小不超过3M"
MAX_FILE: Final = 3_000_000  # the same limit for a multipart binary upload
MESSAGES: Final = {
    100: "内部服务器错误",
    110: "当前API已下线",
    120: "API暂时维护中",
    130: "API调用频率超限",
    140: "API没有调用权限",
    150: "API可用次数不足",
    160: "账号未申请该API",
    170: "Referer请求来源受限",
    180: "IP请求来源受限",
    190: "当前key不可用",
    230: "key错误或为空",
    240: "缺少key参数",
    250: "数据返回为空",
    260: "参数值不得为空",
    270: "参数值不符合要求",
    280: "缺少必要的参数",
    290: "超过最大输入限制",
}
# Canonical directive keys -> Tianapi fields. Tianapi reads no body colour, so "color"
# is its own field name here: the plate's colour.
OVERRIDES: Final = {
    "plate": "number",
    "plate_color": "color",
    "number": "number",
    "color": "color",
}
# "支持jpg/png/bmp格式": what else an image may be, and the code and message it answers.
UNREADABLE: Final = {
    Unreadable.FORMAT: (270, "图片格式不支持"),
    Unreadable.BOMB: (290, None),
    Unreadable.UNDECODABLE: (270, "图片解码失败"),
}


def answer(code: int | str, message: str | None = None, result: Any = None) -> web.Response:
    """Tianapi's envelope; codes given as digit strings (directives) are sent as numbers."""
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    text = message or (MESSAGES.get(code, str(code)) if isinstance(code, int) else code)
    body: dict[str, Any] = {"code": code, "msg": text}
    if result is not None:
        body["result"] = result
    return json_answer(body)


def refuse(code: int, message: str | None = None) -> Refusal:
    return Refusal(answer(code, message))


def plates_of(seen: Scene, count: int | None = None) -> list[dict[str, str]]:
    """The plates ``seen`` shows, left to right; ``count`` keeps the first that many."""
    plates = [{"color": p.color, "number": p.number} for p in seen.plates]
    return plates if count is None else plates[:count]


def _apply(plates: list[dict[str, str]], fields: dict[str, Any]) -> None:
    """Directive overrides: a list sets plate i from item i, a scalar sets the first plate."""
    for key, value in fields.items():
        target = OVERRIDES.get(key)
        if target is None:
            continue
        values = value if isinstance(value, list) else [value]
        for plate, item in zip(plates, values, strict=False):
            plate[target] = str(item)


def _multipart(content_type: str, body: bytes) -> dict[str, str | bytes]:
    """Fields of a multipart/form-data body: text for plain fields, bytes for files."""
    header = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(header + body)
    fields: dict[str, str | bytes] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        filename = part.get_filename()
        fields[name] = payload if filename else payload.decode("utf-8", "replace")
    return fields


def _params(request: web.Request, body: bytes) -> dict[str, str | bytes]:
    params: dict[str, str | bytes] = dict(request.query)
    if request.method != "POST":
        return params
    if request.content_type == "application/x-www-form-urlencoded":
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        params.update({k: v[-1] for k, v in form.items()})
    elif request.content_type == "multipart/form-data":
        params.update(_multipart(request.headers.get("Content-Type", ""), body))
    return params


class Sim(SimBase):
    provider: ClassVar[str] = NAME
    routes: ClassVar[tuple[tuple[str, str], ...]] = (("POST", PATH), ("GET", PATH))
    # Tianapi's per-second cap is per account and unpublished ("可在控制台-接口管理中查询");
    # 10/s stands in for it, above the adapter's 5/s default so normal runs aren't throttled.
    default_limit: ClassVar[int] = 10
    internal_error_code: ClassVar[str] = "100"
    settings_class: ClassVar[type[ProviderSettings]] = TianapiPlateSettings
    settings: TianapiPlateSettings

    def throttled(self) -> web.Response:
        return answer(130)

    def error_in_200(self) -> web.Response:
        return answer(int(self.internal_error_code))

    def quota_exhausted(self) -> web.Response:
        return answer(150)

    def unreadable(self, kind: Unreadable) -> web.Response:
        return answer(*UNREADABLE[kind])

    def directed_error(self, directive: Directive) -> web.Response:
        return answer(directive.error or "", directive.message)

    def nothing_found(self, call: Call) -> web.Response:
        return answer(250)

    def accept(self, request: web.Request, body: bytes) -> Call:
        params = _params(request, body)
        key = self._check_key(params)
        return Call(key, self._image(params))

    def _check_key(self, params: dict[str, str | bytes]) -> str:
        if "key" not in params:
            raise refuse(240)
        given = params["key"]
        given = given.encode() if isinstance(given, str) else given
        expected = self.settings.key.get_secret_value() if self.settings.key else ""
        if not given or not expected or not hmac.compare_digest(given, expected.encode()):
            raise refuse(230)
        return expected

    def _image(self, params: dict[str, str | bytes]) -> bytes:
        img = params.get("img")
        if img is None:
            if params.get("imgurl"):  # nothing can be fetched from here
                raise refuse(270, "图片下载失败")
            raise refuse(260 if "imgurl" in params else 280)
        if not img:
            raise refuse(260)
        if isinstance(img, bytes):  # multipart binary upload: the file itself
            if len(img) > MAX_FILE:
                raise refuse(290)
            return img
        if len(img) > MAX_B64:
            raise refuse(290)
        try:
            return base64.b64decode(img, validate=True)
        except (binascii.Error, ValueError):
            raise refuse(270, "图片base64编码错误") from None

    def answer(
        self, call: Call, seen: Scene, directive: Directive, flaw: Flaw | None
    ) -> web.Response:
        if not seen.plates or flaw is Flaw.FAILURE:
            return answer(250)
        plates = plates_of(seen, directive.count)
        _apply(plates, dict(directive.fields))
        return answer(200, "success", plates[0] if len(plates) == 1 else {"list": plates})
