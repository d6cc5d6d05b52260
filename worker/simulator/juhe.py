"""What the simulators of Juhe's APIs share: the envelope, system codes, bodies, images.

Juhe answers every call with HTTP 200 and ``{"reason", "result", "error_code"}`` (in that
order, as in the docs' examples); errors carry ``result: null``. The key is checked
against the same ``VREC_JUHE_*__KEY`` setting the adapter reads: none configured means
every call answers 10001, as an unknown key does. :class:`JuheSim` is the part of ``Sim``
both simulators share: system answers, refusals and directed error codes. A key's calls
for the day spent (the ``quotas`` knob) answer 10012 请求超过次数限制 (the count limit;
10013 is the same for a test key); a call over the per-second limit answers 10011
当前IP请求超过限制.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import random
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any, ClassVar, Final
from urllib.parse import parse_qsl

from aiohttp import web
from pydantic import SecretStr

from worker.simulator.base import Refusal as Refused
from worker.simulator.base import SimBase
from worker.simulator.common import json_answer
from worker.simulator.directives import Directive
from worker.simulator.scene import Unreadable

MAX_B64: Final = 4_000_000  # carDetect's "编码后大小不超过4M"; the plate sim applies it too
SYSTEM_MESSAGES: Final = {
    10001: "错误的请求KEY",
    10002: "该KEY无请求权限",
    10003: "KEY过期",
    10004: "错误的OPENID",
    10005: "应用未审核超时，请提交认证",
    10007: "未知的请求源",
    10008: "被禁止的IP",
    10009: "被禁止的KEY",
    10011: "当前IP请求超过限制",
    10012: "请求超过次数限制",
    10013: "测试KEY超过请求限制",
    10014: "系统内部异常",
    10020: "接口维护",
    10021: "接口停用",
}
THROTTLED: Final = 10011  # 当前IP请求超过限制: the per-second limit
QUOTA: Final = 10012  # 请求超过次数限制: the key's calls are spent
INTERNAL: Final = 10014
BAD_KEY: Final = 10001
_order_ids = random.Random()  # per call, unlike the per-image Synth draws


def envelope(code: int | str, reason: str, result: Any = None) -> web.Response:
    return json_answer({"reason": reason, "result": result, "error_code": code})


def error(code: int | str, message: str | None, messages: Mapping[int, str]) -> web.Response:
    """An error answer; ``messages`` are the API's own, then the system table."""
    table = {**SYSTEM_MESSAGES, **messages}
    text = message or (table.get(code) if isinstance(code, int) else None) or "错误"
    return envelope(code, text)


def directed_code(directive: Directive) -> int | str:
    """The directive's error code as Juhe sends it: an int when it is a number."""
    code = directive.error or ""
    return int(code) if code.lstrip("-").isdigit() else code


def order_id() -> str:
    """A fresh order id in the docs' shape (JH + 24 digits), unique per call."""
    return "JH" + "".join(_order_ids.choice("0123456789") for _ in range(24))


def check_key(expected: SecretStr | None, given: str | bytes | None) -> str:
    """The key, unless ``given`` isn't the configured one (no key configured: always):
    10001."""
    if expected is None or not expected.get_secret_value() or not given:
        raise Refused(error(BAD_KEY, None, {}))
    given_bytes = given.encode() if isinstance(given, str) else given
    if not hmac.compare_digest(given_bytes, expected.get_secret_value().encode()):
        raise Refused(error(BAD_KEY, None, {}))
    return expected.get_secret_value()


def form_fields(request: web.Request, body: bytes) -> dict[str, str]:
    """An urlencoded body's fields (first value wins); none for other content types."""
    if request.content_type != "application/x-www-form-urlencoded":
        return {}
    pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


@dataclass(frozen=True)
class Part:
    data: bytes
    filename: str | None
    content_type: str | None


def multipart_fields(request: web.Request, body: bytes) -> dict[str, Part]:
    """A multipart/form-data body's parts by name (first wins); none for other types.

    Parsed from the pre-read body (the server already consumed the stream).
    """
    if request.content_type != "multipart/form-data":
        return {}
    header = Message()
    header["content-type"] = request.headers.get("Content-Type", "")
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return {}
    parts: dict[str, Part] = {}
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):  # the closing delimiter
            break
        head, found, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not found:
            continue
        headers = BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if isinstance(name, str) and name not in parts:
            content_type = headers.get("content-type")
            parts[name] = Part(
                data.removesuffix(b"\r\n"),
                headers.get_filename(),
                str(content_type) if content_type is not None else None,
            )
    return parts


def decode_b64(text: str, code: int) -> bytes:
    """The image in base64 ``text``, or ``code`` for text over 4M or not strict base64.

    Strict on purpose: a ``data:`` header, or a ``+`` that wasn't urlencoded (it arrives
    as a space), fails here as it fails at Juhe.
    """
    if len(text) > MAX_B64:
        raise Refused(error(code, "图片大小超过4M", {}))
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(error(code, "图片base64解码失败", {})) from None


class JuheSim(SimBase):
    """What both Juhe ``Sim`` classes answer alike; a subclass sets ``messages`` (its API's
    own codes) and ``failed`` (its "recognition failed" code, also its answer to an image
    that does not decode)."""

    internal_error_code: ClassVar[str] = str(INTERNAL)
    messages: ClassVar[Mapping[int, str]]
    failed: ClassVar[int]

    def throttled(self) -> web.Response:
        return error(THROTTLED, None, self.messages)

    def error_in_200(self) -> web.Response:
        return error(INTERNAL, None, self.messages)

    def quota_exhausted(self) -> web.Response:
        return error(QUOTA, None, self.messages)

    def unreadable(self, kind: Unreadable) -> web.Response:
        message = "图片格式错误，支持jpg/png/bmp" if kind is Unreadable.FORMAT else None
        return error(self.failed, message, self.messages)

    def directed_error(self, directive: Directive) -> web.Response:
        return error(directed_code(directive), directive.message, self.messages)

    def refuse(self, code: int | str, message: str | None = None) -> Refused:
        return Refused(error(code, message, self.messages))
