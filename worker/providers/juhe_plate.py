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
from typing import Any, ClassVar, Final, Literal

from worker.config import FitMode, ProviderSettings
from worker.errors import ProviderUnavailable, Transient, VendorRejectedImage
from worker.image_limits import PreparedImage
from worker.providers import juhe
from worker.providers.base import PlateReading, VendorRequest, check_options
from worker.providers.common import RedactedText, check_size, int_of, text
from worker.providers.keyed_form import KeySettings

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
    _, entries = juhe.result_list(result, "res")
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


class JuhePlateSettings(KeySettings):
    """``VREC_JUHE_PLATE__*``: the API key, where the API lives and which request to send."""

    base_url: str = "http://apis.juhe.cn/verify_carlicense"
    mode: Literal["base64", "multipart"] = "base64"


class JuhePlate(juhe.JuheAdapter[JuhePlateSettings]):
    """The adapter: builds the form or multipart body, maps answers. No I/O.

    The doc states no image limits for this API: carDetect's are used (Juhe's sibling API,
    same platform), so an image prepared for one is accepted by the other.
    """

    name: ClassVar[str] = NAME
    settings_model: ClassVar[type[ProviderSettings]] = JuhePlateSettings
    errors: ClassVar[Mapping[int, juhe.Kind]] = ERRORS
    image_field: ClassVar[str] = "file"
    # A plate is a small part of the photo: its characters need every pixel allowed.
    fit: ClassVar[FitMode] = "exact"

    def url(self) -> str:
        """``base_url`` plus the mode's path: ``/query`` (base64) or ``/verify`` (multipart)."""
        path = "/verify" if self.settings.mode == "multipart" else "/query"
        return self.settings.base_url.rstrip("/") + path

    def build_request(self, image: PreparedImage, options: Mapping[str, str]) -> VendorRequest:
        if self.settings.mode != "multipart":
            return super().build_request(image, options)
        check_options(self, options)
        key = self.key()
        check_size(image, self.limits, NAME)
        parts: tuple[tuple[str, bytes | str, str | None, str | None], ...] = (
            ("key", RedactedText(key), None, None),
            ("file", image.data, juhe.filename(image), image.mime),
        )
        # No Content-Type header: aiohttp writes multipart/form-data with its boundary.
        return VendorRequest("POST", self.url(), {}, multipart=parts)

    def read(self, result: Any) -> list[PlateReading]:
        return readings_of(result)
