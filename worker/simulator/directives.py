"""Images that dictate the simulator's answer, so tests and demos can force any outcome.

A directive is a JSON object drawn into the image's pixels, as a magenta band of black
and white modules (a :data:`worker.simulator.scene.DIRECTIVE` mark): the image carries no
metadata for it, and it survives what vrec does to an image (resizing, JPEG re-encoding)
as long as the band's modules stay about 3 px wide, i.e. the image at least about 150 px
wide. :func:`make_image` draws a plain image with the band along its bottom edge;
:func:`with_directive` adds the band below any image (its height grows); :func:`read_directive`
reads it back from the decoded pixels and never raises: no directive, or a broken one, is
an empty :class:`Directive`. A directive dictates the outcome; it does not make a vendor
see what the image does not show: ``{"plate": "沪A12345"}`` renames a plate the vendor
reads, and a plain image with it still has no plate (draw one: :mod:`.samples`).

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
anything else a field override of what is read. Canonical names: ``plate``,
              ``plate_color``, ``vin``, ``owner``, ``address``, ``model``, ``color``,
              ``vehicle_type``, ``engine_no``, ``register_date``, ``issue_date``,
              ``confidence``, ``name``, ``year``; a vendor's own field name (e.g. Tencent
              ``PlateNo``) also works.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from worker.simulator import marks, scene
from worker.simulator.marks import MIN_MODULE

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
        warn = data.get("warn")
        warn = warn if isinstance(warn, list) else []
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


def read_directive(data: bytes) -> Directive:
    """The directive drawn in ``data`` (an image file), or an empty one."""
    seen = scene.look(data)
    return (
        Directive() if isinstance(seen, scene.Unreadable) else Directive.from_json(seen.directive)
    )


def _band(width: int, directive: Mapping[str, Any]) -> tuple[bytes, float, int]:
    """(payload, module size, band height) of ``directive`` drawn across ``width`` px."""
    payload = scene.directive_payload(dict(directive))
    module = width / (scene.DIRECTIVE.cols + 2)
    return payload, module, marks.size_of(scene.DIRECTIVE, len(payload), module)[1]


def draw_directive(image: Image.Image, directive: Mapping[str, Any]) -> None:
    """Draw ``directive`` along the bottom edge of ``image`` (in place)."""
    payload, module, height = _band(image.width, directive)
    if height > image.height or module < MIN_MODULE:
        raise ValueError(
            f"a {image.width}x{image.height} image is too small for directive {dict(directive)}"
        )
    marks.draw(image, (0, image.height - height), module, scene.DIRECTIVE, payload)


def encode(image: Image.Image, fmt: str) -> bytes:
    """``image`` as ``fmt`` bytes (JPEG at quality 95), nothing but the pixels."""
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(buffer, "JPEG", quality=95)
    else:
        image.save(buffer, format=fmt)
    return buffer.getvalue()


def with_directive(image: bytes, directive: Mapping[str, Any]) -> bytes:
    """``image`` (PNG, JPEG or BMP) with ``directive`` drawn in a band added below it;
    the same format, re-encoded (JPEG at quality 95)."""
    with Image.open(io.BytesIO(image)) as original:
        fmt = original.format or "PNG"
        if fmt not in scene.FORMATS:
            raise ValueError("directives go into PNG, JPEG or BMP images only")
        rgb = original.convert("RGB")
    _payload, _module, height = _band(rgb.width, directive)
    taller = Image.new("RGB", (rgb.width, rgb.height + height), (255, 255, 255))
    taller.paste(rgb, (0, 0))
    draw_directive(taller, directive)
    return encode(taller, fmt)


def make_image(
    directive: Mapping[str, Any] | None = None,
    *,
    size: tuple[int, int] = (640, 480),
    fmt: str = "PNG",
    color: tuple[int, int, int] = (40, 90, 160),
) -> bytes:
    """A solid image (PNG/JPEG/BMP/GIF...) showing nothing a vendor reads, optionally with
    ``directive`` drawn along its bottom edge; for tests and the demo."""
    image = Image.new("RGB", size, color)
    if directive:
        draw_directive(image, directive)
    if fmt in scene.FORMATS:
        return encode(image, fmt)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()
