"""Small JPEG thumbnails of a batch's images with what the vendor read drawn on them.

A plate box ([left, top, right, bottom], Juhe) or quadrilateral (four corners, Aliyun) is in
the coordinates of the image *the vendor received*, which may be a resized or rotated copy
of the file. So the thumbnail is made from the same preparation the worker does
(:func:`worker.imaging.prepare`, with every guard against hostile files), and the shapes
are scaled from that frame. A licence (Tencent) has no coordinates: its main fields are
written in a band across the image. Text is drawn with a CJK font where the system has
one; otherwise characters the default font lacks (the province of a plate) are left out
of the drawing, while the page beside it shows the full reading.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from worker import imaging
from worker.config import FitMode
from worker.errors import JobError
from worker.fetch import url_scheme
from worker.local_files import read_regular
from worker.providers.base import PlateReading, Reading, VehicleLicenseReading
from worker.providers.registry import provider_class

THUMB_SIDE = 240  # px, the longer side
THUMB_QUALITY = 70
MAX_SOURCE_BYTES = 50_000_000  # a file larger than any vendor's limit is not read
BOX = (255, 0, 200)  # magenta: rare in photos, seen on any background
BAND = (0, 0, 0, 170)
CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)


@dataclass(frozen=True)
class Thumbnail:
    """A ``data:`` URI of the annotated JPEG, or why there is none."""

    data_uri: str | None
    note: str | None = None


@dataclass(frozen=True)
class _Font:
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont
    cjk: bool


@cache
def _font(size: int = 12) -> _Font:
    for path in CJK_FONTS:
        if Path(path).exists():
            return _Font(ImageFont.truetype(path, size), cjk=True)
    return _Font(ImageFont.load_default(size=size), cjk=False)


def drawable(text: str) -> str:
    """``text`` as the font can draw it: all of it with a CJK font, else its ASCII part."""
    if _font().cjk:
        return text
    return "".join(ch for ch in text if 32 <= ord(ch) < 127).strip()


def thumbnail(
    source_uri: str, provider: str, readings: list[Reading], fit: FitMode | None = None
) -> Thumbnail:
    """The annotated thumbnail of ``source_uri`` as ``provider`` received it (fitted as
    ``fit``, the provider's setting; None: its class default)."""
    if url_scheme(source_uri):
        return Thumbnail(None, "a URL source: not fetched for the report")
    cls = provider_class(provider)
    try:
        # A regular file under the cap only: the path may hold a FIFO or a device by now.
        data = read_regular(source_uri, MAX_SOURCE_BYTES)
        prepared = imaging.prepare(data, cls.limits, fit or cls.fit)
    except JobError as exc:
        return Thumbnail(None, f"cannot picture it: {exc.message}")
    with Image.open(io.BytesIO(prepared.data)) as opened:
        opened.draft("RGB", (THUMB_SIDE, THUMB_SIDE))  # JPEG: decode at a fraction of the size
        image = opened.convert("RGB")
    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    annotate(image, readings, scale=image.width / prepared.width)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=THUMB_QUALITY, optimize=True)
    return Thumbnail("data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii"))


def annotate(image: Image.Image, readings: list[Reading], *, scale: float) -> None:
    """Draw ``readings`` on ``image`` (the vendor's frame scaled by ``scale``)."""
    draw = ImageDraw.Draw(image, "RGBA")
    font = _font().font
    for reading in readings:
        if isinstance(reading, PlateReading):
            _plate(draw, reading, scale, font)
        elif isinstance(reading, VehicleLicenseReading):
            _licence(draw, image.size, reading, font)


def _plate(
    draw: ImageDraw.ImageDraw,
    reading: PlateReading,
    scale: float,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    points: list[tuple[float, float]] = []
    if reading.box and len(reading.box) == 4:
        left, top, right, bottom = (v * scale for v in reading.box)
        points = [(left, top), (right, top), (right, bottom), (left, bottom)]
    elif reading.quad and len(reading.quad) >= 3:
        points = [(c.get("x", 0) * scale, c.get("y", 0) * scale) for c in reading.quad]
    if not points:
        return
    draw.polygon(points, outline=BOX, width=2)
    label = drawable(reading.plate_no or "")
    if label:
        x = min(p[0] for p in points)
        y = max(0.0, min(p[1] for p in points) - 14)
        draw.rectangle(draw.textbbox((x, y), label, font=font), fill=BOX)
        draw.text((x, y), label, fill="white", font=font)


def _licence(
    draw: ImageDraw.ImageDraw,
    size: tuple[int, int],
    reading: VehicleLicenseReading,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    fields = (
        ("plate", reading.plate_no),
        ("VIN", reading.vin),
        ("engine", reading.engine_no),
        ("owner", reading.owner),
        ("file", reading.file_no),
    )
    lines = [f"{name} {drawable(value)}" for name, value in fields if value and drawable(value)]
    lines.insert(0, f"licence {reading.side}")
    height = 14 * len(lines) + 6
    top = size[1] - height
    draw.rectangle((0, top, size[0], size[1]), fill=BAND)
    draw.rectangle((1, 1, size[0] - 2, size[1] - 2), outline=BOX, width=2)
    for i, line in enumerate(lines):
        draw.text((6, top + 3 + 14 * i), line, fill="white", font=font)
