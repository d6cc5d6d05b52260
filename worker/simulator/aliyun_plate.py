"""Simulator of the Aliyun API market ``ocrCars`` API on ``POST /ocrCars``.

Two layers, as on the real host:

1. The **API gateway**: ``Authorization: APPCODE <code>`` against
   ``VREC_ALIYUN_PLATE__APPCODE``, or the AppKey/AppSecret digest signature
   (:mod:`worker.providers.aliyun_sign`) against ``__APP_KEY``/``__APP_SECRET``, with the
   15-minute timestamp window and single-use nonces, and the credential's daily quota
   (``Quota Exhausted``). Refusals are HTTP 4xx with an empty body and
   ``X-Ca-Error-Message`` / ``X-Ca-Request-Id`` headers, messages from Aliyun's gateway
   error table. Echoes the real gateway adds (the AppCode, the server StringToSign) are
   left out: no secret or image data goes into a header.
2. The **API** (showapi envelope, HTTP 200): form fields, the image, its directive, then
   what the image shows (:mod:`worker.simulator.scene`): the largest plate drawn, its
   corners where it is drawn (the confidence lower for the seeded warning share); no
   plate, an illegible one or the seeded recognition failure: the doc's 失败响应, an
   empty ``car_no`` (billed: ``showapi_fee_num`` 1).

Directive ``error``: a ret_code (``20``), a negative showapi_res_code (``-1``, a platform
error) or a gateway message (``"Quota Exhausted"``). ``count`` and ``warn`` don't apply:
this API reads one plate and has no warnings.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar, Final
from urllib.parse import unquote_to_bytes

from aiohttp import web

from worker.config import ProviderSettings
from worker.providers import aliyun_sign
from worker.providers.aliyun_plate import AliyunPlateSettings
from worker.simulator.base import Call, Flaw, Refusal, SimBase
from worker.simulator.common import json_answer
from worker.simulator.directives import Directive
from worker.simulator.scene import Plate, Scene, Unreadable
from worker.simulator.synth import Synth

MAX_B64: Final = 4_000_000  # our reading of ret_code 50; the doc gives no number
RET_MESSAGES: Final = {
    10: "文件下载失败",
    20: "图片解析失败",
    30: "OCR识别失败",
    40: "参数错误",
    50: "文件内容过大",
    60: "文件格式错误",
    70: "操作失败,请勿重复提交",
    80: "服务超时",
    90: "未知错误",
}
GATEWAY_STATUS: Final = {  # Aliyun API Gateway client error table; default 400
    "Missing AppCode": 401,
    "Empty Signature": 401,
    "Invalid AppCode": 403,
    "Unauthorized": 403,
    "Quota Exhausted": 403,
    "Quota Expired": 403,
    "Expiry of Authorization": 403,
    "User Arrears": 403,
    "Request body too Large": 413,
    "Internal Error": 500,
    "Failed To Call Backend Service": 500,
    "Service Unavailable": 503,
    "Async Service": 504,
}
THROTTLED: Final = "Throttled by APP Flow Control"
# Directive field overrides: canonical names and the vendor's own.
OVERRIDES: Final = {
    "plate": "car_no",
    "car_no": "car_no",
    "confidence": "confidence_level",
    "confidence_level": "confidence_level",
    "range": "range",
}
# An image that isn't a JPEG/PNG/BMP -> its ret_code: 60 other formats, 50 a
# decompression bomb, 20 undecodable.
UNREADABLE: Final = {Unreadable.FORMAT: 60, Unreadable.BOMB: 50, Unreadable.UNDECODABLE: 20}


def _res_id() -> str:
    return uuid.uuid4().hex[:24]  # the doc's ids are 24 hex digits


def gateway_error(message: str, status: int | None = None) -> web.Response:
    if status is None:
        status = 403 if message.startswith("Throttled by") else GATEWAY_STATUS.get(message, 400)
    headers = {"X-Ca-Error-Message": message, "X-Ca-Request-Id": str(uuid.uuid4()).upper()}
    return web.Response(status=status, headers=headers)


def envelope(body: dict[str, Any], *, code: int = 0, error: str = "", **extra: Any) -> web.Response:
    answer = {"showapi_res_error": error, **extra, "showapi_res_code": code}
    answer |= {"showapi_res_id": _res_id(), "showapi_res_body": body}
    return json_answer(answer)


def no_plate(ret_code: int = 0, error_msg: str = "", **extra: Any) -> web.Response:
    """The doc's 失败响应 shape: empty car_no, "" confidence, empty range."""
    body = {"confidence_level": "", "ret_code": ret_code, "range": [], "error_msg": error_msg}
    return envelope(body | {"car_no": ""}, **extra)


def ret_error(ret_code: int, message: str | None = None) -> web.Response:
    return no_plate(ret_code, message or RET_MESSAGES.get(ret_code, "未知错误"))


def synthesize(plate: Plate, width: int, height: int, *, blurred: bool = False) -> dict[str, Any]:
    """``showapi_res_body`` for a plate as read: its number and corners as drawn, the
    confidence and tilt drawn from the number."""
    s = Synth(plate.number.encode(), salt="aliyun_plate")
    confidence = s.rng.uniform(0.5, 0.8) if blurred else s.rng.uniform(0.9, 0.999)
    left, top, right, bottom = plate.box
    tilt = s.rng.randint(-3, 3)  # a slightly rotated plate, as in the doc's example
    points = [
        (left, top + tilt),
        (right, top - tilt),
        (right, bottom - tilt),
        (left, bottom + tilt),
    ]
    return {
        "confidence_level": confidence,
        "ret_code": 0,
        "range": [{"y": max(0, min(height, y)), "x": x} for x, y in points],
        "car_no": f"{plate.number[0]} {plate.number[1:]}",  # spaced, as the doc's "粤 BP57E7"
    }


class Sim(SimBase):
    provider: ClassVar[str] = "aliyun_plate"
    routes: ClassVar[tuple[tuple[str, str], ...]] = (("POST", "/ocrCars"),)
    default_limit: ClassVar[int] = 10  # undocumented; the market sells packages, not QPS
    internal_error_code: ClassVar[str] = "90"
    settings_class: ClassVar[type[ProviderSettings]] = AliyunPlateSettings
    settings: AliyunPlateSettings

    def __init__(
        self, settings: ProviderSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(settings, clock=clock)
        self._nonces: dict[str, float] = {}  # nonce -> when first seen (ms)

    def throttled(self) -> web.Response:
        return gateway_error(THROTTLED)

    def error_in_200(self) -> web.Response:
        # An internal failure behind a healthy gateway: the API's own "未知错误" (90),
        # the only internal-error code its doc lists, inside a showapi_res_code 0 envelope.
        return ret_error(int(self.internal_error_code))

    def quota_exhausted(self) -> web.Response:
        return gateway_error("Quota Exhausted")

    def unreadable(self, kind: Unreadable) -> web.Response:
        return ret_error(UNREADABLE[kind])

    def directed_error(self, directive: Directive) -> web.Response:
        return _directed_error(directive)

    def nothing_found(self, call: Call) -> web.Response:
        return no_plate(showapi_fee_num=1)

    def accept(self, request: web.Request, body: bytes) -> Call:
        form = _parse_form(body) if _is_form(request) else {}
        credential = self._check_gateway(request, form)
        return Call(credential, self._image(form))

    def answer(
        self, call: Call, seen: Scene, directive: Directive, flaw: Flaw | None
    ) -> web.Response:
        plate = seen.largest_plate
        if plate is None or flaw is Flaw.FAILURE:
            return self.nothing_found(call)
        body = synthesize(plate, seen.width, seen.height, blurred=flaw is Flaw.WARNING)
        for key, value in directive.fields.items():
            if key in OVERRIDES:
                body[OVERRIDES[key]] = value
        return envelope(body)

    def _check_gateway(self, request: web.Request, form: dict[str, bytes]) -> str:
        """The caller's AppCode or AppKey once the gateway accepts it."""
        auth = request.headers.get("Authorization", "")
        if auth.startswith("APPCODE "):
            code = self.settings.appcode
            given = auth.removeprefix("APPCODE ").strip()
            if code is None or not hmac.compare_digest(given, code.get_secret_value()):
                raise Refusal(gateway_error("Invalid AppCode"))
            return given
        if aliyun_sign.X_CA_KEY not in request.headers:
            raise Refusal(gateway_error("Missing AppCode"))
        self._check_signature(request, form)
        return request.headers[aliyun_sign.X_CA_KEY]

    def _check_signature(self, request: web.Request, form: dict[str, bytes]) -> None:
        headers = request.headers
        given = headers.get(aliyun_sign.X_CA_SIGNATURE, "")
        if not given:
            raise Refusal(gateway_error("Empty Signature"))
        key, secret = self.settings.app_key, self.settings.app_secret
        if (
            key is None
            or secret is None
            or not hmac.compare_digest(headers[aliyun_sign.X_CA_KEY], key.get_secret_value())
        ):
            raise Refusal(gateway_error("Invalid AppKey"))
        method = headers.get(aliyun_sign.X_CA_SIGNATURE_METHOD, aliyun_sign.SIGNATURE_METHOD)
        if method not in aliyun_sign.DIGESTS:
            raise Refusal(gateway_error("Invalid Signature Method"))
        now_ms = self._clock() * 1000
        stamp = headers.get(aliyun_sign.X_CA_TIMESTAMP)
        if stamp is not None and (
            not stamp.isdigit() or abs(now_ms - int(stamp)) > aliyun_sign.MAX_SKEW_MS
        ):
            raise Refusal(gateway_error("Invalid Timestamp"))
        to_sign = aliyun_sign.string_to_sign_of(
            method=request.method,
            headers=headers,
            path=request.path,
            query=request.rel_url.raw_query_string,
            form=form,
        )
        expected = aliyun_sign.signature(secret.get_secret_value(), to_sign, method)
        if not hmac.compare_digest(expected, given):
            raise Refusal(gateway_error("Invalid Signature"))
        self._check_nonce(headers.get(aliyun_sign.X_CA_NONCE), now_ms)

    def _check_nonce(self, nonce: str | None, now_ms: float) -> None:
        if not nonce:
            return
        cutoff = now_ms - aliyun_sign.MAX_SKEW_MS
        nonces = {n: t for n, t in self._nonces.items() if t >= cutoff}
        if nonce in nonces:
            raise Refusal(gateway_error("Nonce Used"))
        nonces[nonce] = now_ms
        self._nonces = nonces

    def _image(self, form: dict[str, bytes]) -> bytes:
        b64 = form.get("img_base64", b"")
        if not b64:  # "img_base64 和 img_url 二选一，同时存在以 base64 为主"
            if form.get("img_url"):
                raise Refusal(ret_error(10))  # nothing can be downloaded from here
            raise Refusal(ret_error(40))
        if len(b64) > MAX_B64:
            raise Refusal(ret_error(50))
        try:
            return base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise Refusal(ret_error(20)) from None


def _is_form(request: web.Request) -> bool:
    return request.content_type == "application/x-www-form-urlencoded"


def _unquote(value: bytes) -> bytes:
    """Form-decode; base64 text (only %2B %2F %3D escaped) takes the fast path."""
    fast = value.replace(b"%2B", b"+").replace(b"%2F", b"/").replace(b"%3D", b"=")
    if b"%" not in fast and b"+" not in value:
        return fast
    return unquote_to_bytes(value.replace(b"+", b" "))


def _parse_form(body: bytes) -> dict[str, bytes]:
    """Form fields, raw bytes; the first of repeated keys wins (as the gateway signs)."""
    form: dict[str, bytes] = {}
    for part in body.split(b"&"):
        if part:
            key, _, value = part.partition(b"=")
            form.setdefault(_unquote(key).decode("utf-8", "replace"), _unquote(value))
    return form


def _directed_error(directive: Directive) -> web.Response:
    error = directive.error or ""
    if error.lstrip("-").isdigit():
        code = int(error)
        if code < 0:  # a showapi platform error
            return envelope({}, code=code, error=directive.message or "系统调用错误")
        return ret_error(code, directive.message)
    return gateway_error(error)
