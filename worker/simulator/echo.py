"""A vendor that echoes what it was sent, credentials included (``echo_credentials``).

Real vendors do: Tencent's "The SecretId ... is not found", gateways repeating the key
they refused. With the knob on, every answer of every vendor carries the request's
credential-bearing parts (the ``Authorization`` and ``X-Ca-Key`` headers, every form or
query field but the image) in its message fields (``Message``, ``reason``, ``msg``, the
``X-Ca-Error-Message`` header) and in a top-level ``echo`` field, so tests can check that
vrec stores and prints none of it.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

HEADERS = ("Authorization", "X-Ca-Key")
IMAGE_FIELDS = frozenset({"image", "img", "file", "img_base64", "imagebase64", "imageurl"})
MESSAGE_KEYS = frozenset({"message", "reason", "msg", "error_msg", "errmsg"})
LONGEST = 256  # characters of one field echoed (an image is not)


def presented(request: web.Request, body: bytes) -> str:
    """What the request carried that may identify its caller, as ``name=value`` pairs."""
    pairs = [(h, request.headers[h]) for h in HEADERS if h in request.headers]
    pairs += list(request.query.items())
    pairs += _form_fields(request.content_type, request.headers.get("Content-Type", ""), body)
    return "; ".join(
        f"{name}={value}"
        for name, value in pairs
        if name.lower() not in IMAGE_FIELDS and len(value) <= LONGEST
    )


def _form_fields(content_type: str, header: str, body: bytes) -> list[tuple[str, str]]:
    if content_type == "application/x-www-form-urlencoded":
        return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    if content_type == "multipart/form-data":
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {header}\r\n\r\n".encode() + body
        )
        fields = []
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and part.get_filename() is None and isinstance(payload, bytes):
                fields.append((name, payload.decode("utf-8", "replace")))
        return fields
    return []


def echoed(response: web.Response, echo: str) -> web.Response:
    """``response`` with ``echo`` added to its message fields, header and JSON body."""
    if not echo:
        return response
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    if "X-Ca-Error-Message" in headers:
        headers["X-Ca-Error-Message"] += f" ({echo})"
    body = response.body
    if isinstance(body, bytes) and body:
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            decoded = _with_echo(decoded, echo)
            decoded["echo"] = echo
            body = json.dumps(decoded, ensure_ascii=False).encode()
    return web.Response(status=response.status, headers=headers, body=body)


def _with_echo(value: Any, echo: str) -> Any:
    if isinstance(value, dict):
        return {
            k: (
                f"{v} ({echo})"
                if k.lower() in MESSAGE_KEYS and isinstance(v, str)
                else _with_echo(v, echo)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_with_echo(v, echo) for v in value]
    return value
