"""Drawn marks: bytes carried in an image's pixels, found again after resizing and JPEG.

A mark is a rectangle: a frame of one key colour, one module thick, around a grid of
square modules, each ``ink`` (a 1 bit) or ``paper`` (a 0 bit). What the simulator reads
from a synthetic image (a plate's number, a licence page's side, a car's badge, a test
directive) is drawn as a mark of its own :class:`Style`; the key colour says what kind
of mark it is, so the reader finds every mark of a style by colour alone, wherever it
is drawn and at whatever size:

1. classify pixels into the style's colour class (hue window, saturation and value
   floors, HSV as Pillow computes it), erode once to drop JPEG specks;
2. cut the class mask into regions at empty rows and columns (X-Y cut on projections);
3. for each region big enough, take the module size from its width (the column count is
   the style's), sample every module's centre by an area-averaging resize, and threshold
   between the darkest and lightest samples.

Bits are the payload, a length byte (unless the style's payload has a fixed length) and
a CRC-16, whitened by a fixed pseudo-random sequence so no payload draws a flat area.
A region whose CRC fails is "glimpsed": the colour is there, the content is illegible
(too small, too blurred), as a vendor sees a plate it cannot read.

Everything is Pillow C code but the per-module thresholding; a 1000x700 image is read in
a few milliseconds. Marks survive what vrec does to an image (DCT-scaled decode, LANCZOS
resize, JPEG at quality 50-90) while a module stays at least about 3 pixels wide.
"""

from __future__ import annotations

import binascii
import colorsys
import functools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageChops, ImageDraw

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]  # left, top, right, bottom (right/bottom exclusive)

_WHITEN: Final = [random.Random(0x7672_6563).getrandbits(1) for _ in range(8 * 512)]
ANALYSIS: Final = 400  # px: the longest side colours are searched at
VIVID: Final = (100, 80)  # the lowest saturation and value floors a style may have
MIN_MODULE: Final = 2.5  # px: below this a mark is treated as illegible, not decoded
_MIN_CONTRAST: Final = 48  # grey levels between the darkest and lightest module


@dataclass(frozen=True)
class Style:
    """One kind of mark: its key colour (drawn, and the class it is found by), its ink and
    paper (paper ``None``: the frame colour), and its grid."""

    name: str
    frame: RGB
    ink: RGB
    paper: RGB | None
    cols: int
    rows: int | None = None  # None: as many as the payload needs (read from the aspect)
    length: int | None = None  # fixed payload length in bytes (no length byte)
    hue_tolerance: int = 9  # on Pillow's 0-255 hue scale
    min_saturation: int = 150
    min_value: int = 120

    @property
    def hue(self) -> int:
        h, _s, _v = colorsys.rgb_to_hsv(*(c / 255 for c in self.frame))
        return round(h * 255)

    @property
    def paper_rgb(self) -> RGB:
        return self.paper if self.paper is not None else self.frame

    def capacity_rows(self, payload_length: int) -> int:
        """Rows of this style's grid for a payload of ``payload_length`` bytes."""
        if self.rows is not None:
            return self.rows
        return max(1, math.ceil(_bit_count(self, payload_length) / self.cols))


@dataclass(frozen=True)
class Found:
    """A mark read from an image: where (in the image's pixels) and what it carries."""

    box: Box
    payload: bytes


@dataclass(frozen=True)
class Reading:
    """Every mark of one style in an image, and how many regions of its colour were too
    big to be noise but would not decode."""

    found: tuple[Found, ...]
    illegible: int


def _bit_count(style: Style, payload_length: int) -> int:
    header = 0 if style.length is not None else 1
    return 8 * (header + payload_length + 2)


def _bits(style: Style, payload: bytes) -> list[int]:
    if style.length is not None and len(payload) != style.length:
        raise ValueError(f"{style.name} marks carry exactly {style.length} bytes")
    if style.length is None and len(payload) > 255:
        raise ValueError(f"{style.name} marks carry at most 255 bytes, not {len(payload)}")
    body = payload if style.length is not None else bytes([len(payload)]) + payload
    data = body + binascii.crc_hqx(body, 0xFFFF).to_bytes(2, "big")
    bits = [(byte >> (7 - i)) & 1 for byte in data for i in range(8)]
    capacity = style.cols * style.capacity_rows(len(payload))
    if len(bits) > capacity:
        raise ValueError(f"{len(payload)} bytes do not fit a {style.name} mark")
    bits += [0] * (capacity - len(bits))
    return [b ^ w for b, w in zip(bits, _WHITEN, strict=False)]


def _payload(style: Style, bits: list[int]) -> bytes | None:
    plain = [b ^ w for b, w in zip(bits, _WHITEN, strict=False)]
    data = bytes(
        sum(bit << (7 - i) for i, bit in enumerate(plain[k : k + 8]))
        for k in range(0, len(plain) - 7, 8)
    )
    if style.length is not None:
        body = data[: style.length]
    else:
        if not data:
            return None
        body = data[: 1 + data[0]]
    crc = data[len(body) : len(body) + 2]
    if len(crc) < 2 or binascii.crc_hqx(body, 0xFFFF).to_bytes(2, "big") != crc:
        return None
    return body if style.length is not None else body[1:]


def size_of(style: Style, payload_length: int, module: float) -> tuple[int, int]:
    """Width and height in pixels of a mark of ``payload_length`` bytes at ``module`` px."""
    rows = style.capacity_rows(payload_length)
    return round((style.cols + 2) * module), round((rows + 2) * module)


def draw(
    image: Image.Image, origin: tuple[float, float], module: float, style: Style, payload: bytes
) -> Box:
    """Draw ``payload`` as a mark of ``style`` with its top-left corner at ``origin``;
    returns the box it covers."""
    bits = _bits(style, payload)
    rows = len(bits) // style.cols
    x0, y0 = origin
    canvas = ImageDraw.Draw(image)

    def edge(start: float, k: int) -> int:
        return round(start + k * module)

    box = (edge(x0, 0), edge(y0, 0), edge(x0, style.cols + 2), edge(y0, rows + 2))
    canvas.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=style.frame)
    canvas.rectangle(
        (edge(x0, 1), edge(y0, 1), edge(x0, style.cols + 1) - 1, edge(y0, rows + 1) - 1),
        fill=style.paper_rgb,
    )
    for index, bit in enumerate(bits):
        if bit:
            r, c = divmod(index, style.cols)
            cell = (edge(x0, c + 1), edge(y0, r + 1), edge(x0, c + 2) - 1, edge(y0, r + 2) - 1)
            canvas.rectangle(cell, fill=style.ink)
    return box


def _luma(rgb: RGB) -> float:
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b


class Looker:
    """One decoded image, ready to be searched for marks of several styles."""

    def __init__(self, rgb: Image.Image) -> None:
        self.rgb = rgb
        self.grey = rgb.convert("L")
        # Colours are searched at up to ANALYSIS px (a few ms), modules sampled at full size.
        self.scale = max(1, math.ceil(max(rgb.size) / ANALYSIS))
        small = rgb.reduce(self.scale) if self.scale > 1 else rgb
        self._h, self._s, self._v = small.convert("HSV").split()
        # Which hues vivid pixels have: a style whose hue window holds none is skipped.
        vivid = ImageChops.darker(self._s.point(_floor(VIVID[0])), self._v.point(_floor(VIVID[1])))
        self._hues = self._h.histogram(mask=vivid)

    def read(self, style: Style) -> Reading:
        found: list[Found] = []
        illegible = 0
        for box, legible in self._regions(style):
            payload = self._decode(box, style) if legible else None
            if payload is None:
                illegible += 1
            else:
                found.append(Found(box, payload))
        return Reading(tuple(found), illegible)

    def _mask(self, style: Style) -> Image.Image:
        hue, saturation, value = _tables(style)
        if not any(self._hues[h] for h, inside in enumerate(hue) if inside):
            return Image.new("L", self._h.size)  # no vivid pixel of this hue: the common case
        mask = ImageChops.darker(self._h.point(hue), self._s.point(saturation))
        return ImageChops.darker(mask, self._v.point(value))

    def _regions(self, style: Style) -> Iterator[tuple[Box, bool]]:
        """Regions of the style's colour, with whether their modules are big enough to
        read; regions whose modules would be under a pixel are noise, not marks."""
        mask = self._mask(style)
        k = self.scale
        span = style.cols + 2
        stack = [mask.getbbox()]
        while stack:
            box = stack.pop()
            if box is None:
                continue
            parts = _split(mask, box)
            if parts is not None:
                stack.extend(parts)
                continue
            w, h = (box[2] - box[0]) * k, (box[3] - box[1]) * k
            if w >= span and h >= 3:
                legible = w >= span * MIN_MODULE and h >= 3 * MIN_MODULE
                full = (
                    box[0] * k,
                    box[1] * k,
                    min(self.grey.width, box[2] * k),
                    min(self.grey.height, box[3] * k),
                )
                yield full, legible

    def _decode(self, box: Box, style: Style) -> bytes | None:
        x0, y0, x1, y1 = box
        module = (x1 - x0) / (style.cols + 2)
        rows = style.rows or round((y1 - y0) / module) - 2
        if rows < 1 or abs((rows + 2) * module - (y1 - y0)) > module * 0.6:
            return None
        inner = (x0 + module, y0 + module, x1 - module, y1 - module)
        cells = self.grey.resize((style.cols * 3, rows * 3), Image.Resampling.BOX, box=inner)
        data = cells.tobytes()
        stride = style.cols * 3
        samples = [
            data[(r * 3 + 1) * stride + c * 3 + 1] for r in range(rows) for c in range(style.cols)
        ]
        low, high = min(samples), max(samples)
        if high - low < _MIN_CONTRAST:
            return None
        threshold = (low + high) / 2
        ink_light = _luma(style.ink) > _luma(style.paper_rgb)
        bits = [int((s > threshold) == ink_light) for s in samples]
        return _payload(style, bits)


@functools.cache
def _floor(minimum: int) -> list[int]:
    return [255 if i >= minimum else 0 for i in range(256)]


@functools.cache
def _tables(style: Style) -> tuple[list[int], list[int], list[int]]:
    """The style's colour class as three point tables (hue window, saturation and value
    floors), each 0 or 255."""
    hue, tol = style.hue, style.hue_tolerance
    window = [255 if min((h - hue) % 256, (hue - h) % 256) <= tol else 0 for h in range(256)]
    if style.min_saturation < VIVID[0] or style.min_value < VIVID[1]:
        raise ValueError(f"{style.name}: colour floors below {VIVID} are never searched")
    return window, _floor(style.min_saturation), _floor(style.min_value)


def _split(mask: Image.Image, box: Box) -> list[Box | None] | None:
    """``box`` cut at its empty columns, else at its empty rows; None if it has neither."""
    crop = mask.crop(box)
    xs, ys = crop.getprojection()
    for profile, horizontal in ((xs, True), (ys, False)):
        runs = list(_runs(profile))
        if len(runs) > 1:
            out: list[Box | None] = []
            for start, end in runs:
                sub = (start, 0, end, crop.height) if horizontal else (0, start, crop.width, end)
                inner = crop.crop(sub).getbbox()
                if inner is not None:
                    left, top = box[0] + sub[0], box[1] + sub[1]
                    out.append((left + inner[0], top + inner[1], left + inner[2], top + inner[3]))
            return out
    return None


def _runs(profile: list[int]) -> Iterator[tuple[int, int]]:
    start = None
    for i, value in enumerate(profile):
        if value and start is None:
            start = i
        elif not value and start is not None:
            yield start, i
            start = None
    if start is not None:
        yield start, len(profile)
