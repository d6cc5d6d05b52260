"""What a simulated vendor sees in an image: plates, cars, licence pages and a directive.

:func:`look` decodes the image (the vendor's own decode checks: format, decompression
bomb, truncated data) and reads every mark (:mod:`worker.simulator.marks`) drawn in it:

==============  =====================  ===========================================
what            drawn as               carries
==============  =====================  ===========================================
a plate         a blue, yellow or      its number (the plate's colour is the
                green plate            mark's): ``粤B12345``
a car           an orange badge on     a model number and the body colour
                the car's body
a licence page  a teal mark on a       its side (FRONT, BACK) and a seed for
                行驶证 page             the fields printed on it
a directive     a magenta band         a test directive (:mod:`.directives`)
==============  =====================  ===========================================

:mod:`worker.simulator.samples` draws these; anything else (a real photo, noise, a flat
colour) holds none of them, so every vendor answers it with "nothing found". Marks too
small or too blurred to read are counted as ``illegible`` (the vendor saw a plate it
could not read). The same bytes always give the same :class:`Scene` (cached by digest).

Scenes survive what vrec does to an image before sending it: decode-time DCT scaling,
LANCZOS resizing and JPEG re-encoding at quality 50-90, as long as a mark's modules
stay about 3 px wide; a plate drawn across a quarter of a photo's width reads down to
about 320 px wide photos.
"""

from __future__ import annotations

import enum
import hashlib
import io
import json
import math
import threading
import warnings
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from PIL import Image

from worker.simulator import marks

FORMATS: Final = ("PNG", "JPEG", "BMP")
DECODE_AT: Final = 1600  # px: JPEGs larger than twice this are decoded DCT-scaled
WHITE: Final = (255, 255, 255)
BLACK: Final = (0, 0, 0)

DIRECTIVE: Final = marks.Style("directive", (230, 0, 230), BLACK, WHITE, cols=48)
LICENCE: Final = marks.Style(
    "licence", (0, 130, 140), BLACK, WHITE, cols=14, rows=4, length=5, min_value=90
)
BADGE: Final = marks.Style(
    "car",
    (255, 120, 0),
    BLACK,
    WHITE,
    cols=10,
    rows=4,
    length=3,
    hue_tolerance=6,
    min_saturation=200,
    min_value=200,
)


def _plate(color: str, rgb: marks.RGB, ink: marks.RGB, **colour_class: int) -> marks.Style:
    """A plate: its body colour is the frame and the paper; its characters, the ink."""
    return marks.Style(f"plate:{color}", rgb, ink, None, cols=18, rows=4, length=7, **colour_class)


PLATE_STYLES: Final = {
    "blue": _plate("blue", (15, 65, 215), WHITE, min_saturation=190, min_value=170),
    "yellow": _plate(
        "yellow", (245, 195, 0), BLACK, hue_tolerance=8, min_saturation=200, min_value=200
    ),
    "green": _plate(
        "green", (70, 200, 110), BLACK, hue_tolerance=8, min_saturation=120, min_value=160
    ),
}
SIDES: Final = ("FRONT", "BACK")
# Juhe carDetect's body colours, with the RGB a car of that colour is painted (none falls
# into a mark's colour class).
CAR_COLORS: Final = {
    "黄色": (200, 180, 90),
    "白色": (235, 235, 235),
    "黑色": (25, 25, 25),
    "银色": (190, 192, 198),
    "红色": (165, 30, 35),
    "蓝色": (40, 70, 150),
    "灰色": (110, 110, 110),
    "绿色": (40, 110, 60),
    "棕色": (110, 70, 40),
}
PROVINCES: Final = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
PLATE_CHARS: Final = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ学警挂港澳领使"  # no I or O


class Unreadable(enum.Enum):
    FORMAT = "not a PNG, JPEG or BMP"
    BOMB = "a decompression bomb"
    UNDECODABLE = "does not decode"


@dataclass(frozen=True)
class Plate:
    number: str  # 粤B12345
    color: str  # blue, yellow, green
    box: marks.Box  # in the image's own pixels


@dataclass(frozen=True)
class Car:
    model: int  # 0..65535: which car it is
    color: str  # Juhe's colour name, 白色
    box: marks.Box


@dataclass(frozen=True)
class Page:
    side: str  # FRONT or BACK
    seed: int  # 0..2**32-1: what is printed on it
    box: marks.Box


@dataclass(frozen=True)
class Scene:
    format: str
    width: int
    height: int
    digest: str  # sha256 of the bytes
    directive: dict[str, Any] = field(default_factory=dict)  # its JSON (see .directives)
    plates: tuple[Plate, ...] = ()
    cars: tuple[Car, ...] = ()
    pages: tuple[Page, ...] = ()
    illegible: frozenset[str] = frozenset()  # "plate", "car", "licence": seen, not read

    def fraction(self, salt: str) -> float:
        """A number in [0, 1) fixed by these bytes and ``salt``: the dice of the seeded
        flaws (:mod:`worker.simulator.base`)."""
        digest = hashlib.sha256(f"{salt}:{self.digest}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    @property
    def largest_plate(self) -> Plate | None:
        return max(self.plates, key=lambda p: _area(p.box), default=None)


def _area(box: marks.Box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


# -- payloads -----------------------------------------------------------------------------


def plate_payload(number: str) -> bytes:
    """A plate number as the 7 bytes of a plate mark: a province (5 bits), then up to
    seven characters of :data:`PLATE_CHARS` (6 bits each, 63 for none)."""
    if len(number) not in (7, 8) or number[0] not in PROVINCES:
        raise ValueError(f"not a plate number: {number!r}")
    value = PROVINCES.index(number[0])
    rest = number[1:]
    for i in range(7):
        char = rest[i] if i < len(rest) else None
        if char is not None and char not in PLATE_CHARS:
            raise ValueError(f"{char!r} is not a plate character ({number!r})")
        value = value << 6 | (63 if char is None else PLATE_CHARS.index(char))
    return value.to_bytes(7, "big")


def plate_number(payload: bytes) -> str | None:
    value = int.from_bytes(payload, "big")
    chars = []
    for _ in range(7):
        code = value & 63
        value >>= 6
        if code != 63:
            if code >= len(PLATE_CHARS):
                return None
            chars.append(PLATE_CHARS[code])
    if value >= len(PROVINCES):
        return None
    return PROVINCES[value] + "".join(reversed(chars))


def page_payload(side: str, seed: int) -> bytes:
    return bytes([SIDES.index(side)]) + (seed % 2**32).to_bytes(4, "big")


def car_payload(model: int, color: str) -> bytes:
    return (model % 2**16).to_bytes(2, "big") + bytes([list(CAR_COLORS).index(color)])


def directive_payload(directive: dict[str, object]) -> bytes:
    """A directive's JSON (compact, ASCII), zlib-compressed when that is shorter."""
    text = json.dumps(directive, ensure_ascii=True, separators=(",", ":")).encode()
    packed = zlib.compress(text, 9)
    return b"Z" + packed if len(packed) + 1 < len(text) + 1 else b"J" + text


def _directive(payload: bytes) -> dict[str, Any]:
    try:
        text = zlib.decompress(payload[1:]) if payload[:1] == b"Z" else payload[1:]
        value = json.loads(text)
    except (ValueError, zlib.error):
        return {}
    return value if isinstance(value, dict) else {}


# -- looking --------------------------------------------------------------------------------


_CACHE: OrderedDict[str, Scene | Unreadable] = OrderedDict()
_CACHE_SIZE: Final = 512
_LOCK = threading.Lock()


def look(data: bytes) -> Scene | Unreadable:
    """What ``data`` shows, or which way it is unreadable. Never raises for bad input."""
    digest = hashlib.sha256(data).hexdigest()
    with _LOCK:
        if digest in _CACHE:
            _CACHE.move_to_end(digest)
            return _CACHE[digest]
    seen = _look(data, digest)
    with _LOCK:
        _CACHE[digest] = seen
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return seen


def _look(data: bytes, digest: str) -> Scene | Unreadable:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.format not in FORMATS:
                    return Unreadable.FORMAT
                fmt, size = img.format, img.size
                if fmt == "JPEG" and max(size) > 2 * DECODE_AT:
                    k = max(size) / DECODE_AT
                    img.draft("RGB", (math.ceil(size[0] / k), math.ceil(size[1] / k)))
                img.load()
                rgb = img.convert("RGB")
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            return Unreadable.BOMB
        except (OSError, ValueError, SyntaxError, EOFError):
            return Unreadable.UNDECODABLE
    return _read_marks(rgb, fmt, size, digest)


def _read_marks(rgb: Image.Image, fmt: str, size: tuple[int, int], digest: str) -> Scene:
    looker = marks.Looker(rgb)
    scale = size[0] / rgb.width

    def box(found: marks.Found) -> marks.Box:
        x0, y0, x1, y1 = found.box
        return (round(x0 * scale), round(y0 * scale), round(x1 * scale), round(y1 * scale))

    illegible: set[str] = set()
    plates: list[Plate] = []
    for color, style in PLATE_STYLES.items():
        reading = looker.read(style)
        for found in reading.found:
            number = plate_number(found.payload)
            if number is not None:
                plates.append(Plate(number, color, box(found)))
        if reading.illegible:
            illegible.add("plate")
    cars = []
    reading = looker.read(BADGE)
    for found in reading.found:
        model, paint = int.from_bytes(found.payload[:2], "big"), found.payload[2]
        if paint < len(CAR_COLORS):
            cars.append(Car(model, list(CAR_COLORS)[paint], box(found)))
    if reading.illegible:
        illegible.add("car")
    pages = []
    reading = looker.read(LICENCE)
    for found in reading.found:
        if found.payload[0] < len(SIDES):
            seed = int.from_bytes(found.payload[1:], "big")
            pages.append(Page(SIDES[found.payload[0]], seed, box(found)))
    if reading.illegible:
        illegible.add("licence")
    directives = looker.read(DIRECTIVE).found
    return Scene(
        format=fmt,
        width=size[0],
        height=size[1],
        digest=digest,
        directive=_directive(directives[0].payload) if directives else {},
        plates=tuple(sorted(plates, key=lambda p: (p.box[0], p.box[1]))),
        cars=tuple(cars),
        pages=tuple(sorted(pages, key=lambda p: (p.box[1], p.box[0]))),
        illegible=frozenset(illegible),
    )
