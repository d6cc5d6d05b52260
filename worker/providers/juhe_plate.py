"""Juhe verify_carlicense (车牌号OCR识别): plate number, colour, type, confidence, box.

Two documented requests, chosen by ``VREC_JUHE_PLATE__MODE``:

- ``base64`` (default): ``POST <base_url>/query``, form-urlencoded ``key`` + ``file``
  (base64 text, no ``data:`` header);
- ``multipart``: ``POST <base_url>/verify``, multipart ``key`` + ``file`` (the image file
  itself, with a filename and content type).

Both answer Juhe's envelope (:mod:`worker.providers.juhe`) with ``result.orderid`` and
``result.res[]``, a list of ``{desc, content}`` pairs read by :func:`readings_of`.

Billing: Juhe bills ``error_code`` 0 only (see :mod:`worker.providers.juhe`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from worker.config import FitMode, JuhePlateSettings, ProviderSettings
from worker.errors import ProviderUnavailable, Transient, VendorRejectedImage
from worker.providers import juhe
from worker.providers.base import (
    ImageLimits,
    PlateReading,
    PreparedImage,
    VendorAnswer,
    VendorRequest,
    VendorResponse,
    check_options,
)
from worker.providers.common import (
    RedactedBytes,
    RedactedText,
    check_size,
    credential_id,
    int_of,
    key_of,
    text,
)
from worker.providers.form import FORM_CONTENT_TYPE, form_body

NAME: Final = "juhe_plate"

# The doc's service codes; system codes come from juhe.SYSTEM_ERRORS.
ERRORS: Final[Mapping[int, juhe.Kind]] = {
    271101: Transient,  # 网络错误: Juhe's own upstream failed; the next call may pass
    271102: VendorRejectedImage,  # file参数不可为空: the file arrived empty
    # 识别失败: the vendor couldn't read this image (the simulator answers it for
    # undecodable or oversized files). The same bytes fail the same way, so retrying only
    # delays the verdict; terminal, like a decode failure. Hiccups come as 10014 instead.
    271103: VendorRejectedImage,
    271104: ProviderUnavailable,  # 只支持POST方法: our request is wrong; every call would fail
}

PLATE_NO: Final = "车牌号"
COLOR: Final = "车牌颜色"  # twice: the colour name (蓝), then its code (1)
TYPE: Final = "车牌类型"
CONFIDENCE: Final = "整牌可信度"  # 0-100
BRIGHTNESS: Final = "亮度评价"
DIRECTION: Final = "车牌运动方向"  # 0 unknown, 1 left, 2 right, 3 up, 4 down
POSITION: Final = "车牌位置"  # "车牌位置(left_top_right_bottom)": "l_t_r_b"


def _confidence(value: str | None) -> float | None:
    try:
        percent = float(value) if value is not None else None
    except ValueError:
        return None
    if percent is None or not 0 <= percent <= 100:
        return None
    return round(percent / 100, 4)


def _box(value: str | None) -> list[int] | None:
    parts = re.split(r"[_,\s]+", value) if value else []
    numbers = [n for n in map(int_of, parts) if n is not None]
    return numbers if len(numbers) == len(parts) == 4 else None


def _apply(reading: PlateReading, desc: str, content: str | None) -> None:
    if desc == COLOR:
        # Told apart by content, not order, so a missing one doesn't shift the other.
        code = int_of(content)
        if code is not None:
            reading.color_code = code
        elif reading.color is None:
            reading.color = content
    elif desc == TYPE:
        reading.plate_type = int_of(content)
    elif desc == CONFIDENCE:
        reading.confidence = _confidence(content)
    elif desc == BRIGHTNESS:
        reading.brightness = int_of(content)
    elif desc == DIRECTION:
        reading.direction = int_of(content)
    elif desc.startswith(POSITION):
        reading.box = _box(content)
    # Other descs (new fields Juhe may add) are kept in raw only.


def readings_of(result: Any) -> list[PlateReading]:
    """Plates in ``result.res``; a repeated 车牌号 starts the next plate. Only read plates.

    Raises ValueError when ``result`` or ``result.res`` has the wrong shape; a missing or
    null one is an empty answer.
    """
    if result is None:
        return []
    if not isinstance(result, dict):
        raise ValueError("result is not an object")
    entries = result.get("res")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ValueError("result.res is not a list")
    readings = [PlateReading(position=0)]
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        desc, content = text(entry.get("desc")) or "", text(entry.get("content"))
        if desc == PLATE_NO:
            if readings[-1].plate_no is not None:
                readings.append(PlateReading(position=len(readings)))
            readings[-1].plate_no = content
        else:
            _apply(readings[-1], desc, content)
    found = [r for r in readings if r.plate_no is not None]
    for position, reading in enumerate(found):
        reading.position = position
    return found


class JuhePlate:
    """The adapter: builds the form or multipart body, maps answers. No I/O."""

    name: ClassVar[str] = NAME
    # The doc states no limits for this API: we use carDetect's (Juhe's sibling API, same
    # platform), so an image prepared for one is accepted by the other.
    limits: ClassVar[ImageLimits] = juhe.CAR_LIMITS
    default_rate: ClassVar[float] = juhe.DEFAULT_RATE  # undocumented; conservative
    # A plate is a small part of the photo: its characters need every pixel allowed.
    fit: ClassVar[FitMode] = "exact"
    option_choices: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    settings: ProviderSettings

    def __init__(self, settings: JuhePlateSettings) -> None:
        self.settings = settings
        self._settings = settings

    def credential_id(self) -> str:
        return credential_id(self._settings.key)

    def url(self) -> str:
        """``base_url`` plus the mode's path: ``/query`` (base64) or ``/verify`` (multipart)."""
        path = "/verify" if self._settings.mode == "multipart" else "/query"
        return self._settings.base_url.rstrip("/") + path

    def build_request(self, image: PreparedImage, options: Mapping[str, str]) -> VendorRequest:
        check_options(self, options)
        key = key_of(self._settings.key, NAME)
        check_size(image, self.limits, NAME)
        if self._settings.mode == "multipart":
            parts: tuple[tuple[str, bytes | str, str | None, str | None], ...] = (
                ("key", RedactedText(key), None, None),
                ("file", image.data, juhe.filename(image), image.mime),
            )
            # No Content-Type header: aiohttp writes multipart/form-data with its boundary.
            return VendorRequest("POST", self.url(), {}, multipart=parts)
        body = form_body({"key": key}, {"file": image.b64})
        headers = {"Content-Type": FORM_CONTENT_TYPE}
        return VendorRequest("POST", self.url(), headers, RedactedBytes(body))

    def parse_response(self, response: VendorResponse) -> VendorAnswer:
        return juhe.answer(
            response, provider=NAME, errors=ERRORS, key=self._settings.key, readings_of=readings_of
        )
