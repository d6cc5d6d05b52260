"""Images that dictate the simulator's answer, so tests and demos can force any outcome.

A directive is a JSON object stored in the image itself:

- PNG: a ``tEXt`` (or uncompressed ``iTXt``) chunk with keyword ``vrec-sim``;
- JPEG: a ``COM`` comment segment ``vrec-sim:<json>``.

:func:`with_directive` writes one (JSON is ASCII-escaped, so ``tEXt``'s Latin-1 holds any
text), :func:`read_directive` reads one without decoding pixels and never raises: no
directive, or a broken one, is an empty :class:`Directive`.

Keys (vendor-agnostic; each vendor's ``Sim`` maps them onto its own answer):

``error``     a vendor error code (string or number, the vendor's own), answered in the
              vendor's envelope, e.g. ``{"error": "FailedOperation.ImageBlur"}``,
              ``{"error": 237102}``; ``message`` optionally overrides its text.
``empty``     ``true``: the vendor's "looked, found nothing" answer (Tencent
              NoVehicleLicenseError, Juhe 237102, Aliyun empty car_no, ...).
``fault``     one of the server's faults (``5xx``, ``timeout``, ``reset``, ``malformed``,
              ``error200``) for this image only (:func:`worker.simulator.faults.answer`).
``warn``      a list of vendor warning codes (Tencent ``RecognizeWarnCode``).
``count``     how many plates / candidates to answer (vendors that return several).
anything else a field override. Canonical names: ``plate``, ``plate_color``, ``vin``,
              ``owner``, ``address``, ``model``, ``color``, ``vehicle_type``,
              ``engine_no``, ``register_date``, ``issue_date``, ``confidence``, ``name``,
              ``year``; a vendor's own field name (e.g. Tencent ``PlateNo``) also works.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KEY = "vrec-sim"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_PREFIX = (KEY + ":").encode()
_RESERVED = {"error", "message", "empty", "fault", "warn", "count"}


@dataclass(frozen=True)
class Directive:
    error: str | None = None
    message: str | None = None
    empty: bool = False
    fault: str | None = None
    warn: tuple[int, ...] = ()
    count: int | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> Directive:
        if not isinstance(data, dict):
            return cls()
        error = data.get("error")
        warn = data.get("warn") or []
        count = data.get("count")
        return cls(
            error=None if error is None else str(error),
            message=None if data.get("message") is None else str(data["message"]),
            empty=data.get("empty") is True,
            fault=str(data["fault"]) if data.get("fault") else None,
            warn=tuple(int(w) for w in warn if isinstance(w, int)),
            count=count if isinstance(count, int) and count >= 0 else None,
            fields={k: v for k, v in data.items() if k not in _RESERVED},
        )


def _png_text(data: bytes) -> str | None:
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"tEXt":
            keyword, _, text = chunk.partition(b"\0")
            if keyword == KEY.encode():
                return text.decode("latin-1")
        elif kind == b"iTXt":
            keyword, _, rest = chunk.partition(b"\0")
            # compression flag, method, language\0, translated keyword\0, text
            if keyword == KEY.encode() and rest[:1] == b"\0":
                _, _, rest = rest[2:].partition(b"\0")
                _, _, text = rest.partition(b"\0")
                return text.decode("utf-8", "replace")
        elif kind in (b"IDAT", b"IEND"):  # Pillow writes text chunks before the pixels
            return None
    return None


def _jpeg_comment(data: bytes) -> str | None:
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: no more header segments
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker == 0xFE:
            payload = data[pos + 4 : pos + 2 + length]
            if payload.startswith(_JPEG_PREFIX):
                return payload[len(_JPEG_PREFIX) :].decode("utf-8", "replace")
        pos += 2 + length
    return None


def read_directive(data: bytes) -> Directive:
    """The directive embedded in ``data`` (an image file), or an empty one."""
    text = None
    if data.startswith(_PNG_SIGNATURE):
        text = _png_text(data)
    elif data.startswith(b"\xff\xd8"):
        text = _jpeg_comment(data)
    if text is None:
        return Directive()
    try:
        return Directive.from_json(json.loads(text))
    except (ValueError, TypeError):
        return Directive()


def with_directive(image: bytes, directive: Mapping[str, Any]) -> bytes:
    """``image`` (PNG or JPEG) with ``directive`` embedded; pixels untouched."""
    text = json.dumps(dict(directive), ensure_ascii=True)
    if image.startswith(_PNG_SIGNATURE):
        import zlib

        chunk = KEY.encode() + b"\0" + text.encode("latin-1")
        crc = zlib.crc32(b"tEXt" + chunk)
        encoded = struct.pack(">I", len(chunk)) + b"tEXt" + chunk + struct.pack(">I", crc)
        ihdr_end = len(_PNG_SIGNATURE) + 8 + 13 + 4  # IHDR is always first, 13 bytes
        return image[:ihdr_end] + encoded + image[ihdr_end:]
    if image.startswith(b"\xff\xd8"):
        payload = _JPEG_PREFIX + text.encode()
        if len(payload) > 65533:
            raise ValueError("directive too long for a JPEG comment")
        segment = b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload
        return image[:2] + segment + image[2:]
    raise ValueError("directives go into PNG or JPEG images only")


def make_image(
    directive: Mapping[str, Any] | None = None,
    *,
    size: tuple[int, int] = (64, 48),
    fmt: str = "PNG",
    color: tuple[int, int, int] = (40, 90, 160),
) -> bytes:
    """A tiny solid image (PNG/JPEG/BMP), optionally carrying ``directive``; for tests/demo."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    data = buffer.getvalue()
    return with_directive(data, directive) if directive else data
