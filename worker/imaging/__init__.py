"""Untrusted image bytes -> what one provider accepts, or one specific :class:`InvalidImage`.

The provider declares *what* it accepts (:class:`ImageLimits`, from its doc); this module
does the mechanics, in this order:

1. Identify by content (magic bytes), never by name. JPEG, PNG and BMP may be sent as
   they are; WebP, GIF (first frame) and TIFF are converted; everything else is refused
   with its name ("EPS is not accepted") and is never handed to a Pillow decoder.
2. Open with only the allowed Pillow plugins, and refuse anything above Pillow's
   ``MAX_IMAGE_PIXELS`` ourselves (the warning band included), so no global is touched
   and the message carries the measured size.
3. Measure against the limits in display orientation (EXIF applied): too small is
   invalid; an image that already fits (allowed format, plain 8-bit pixels, upright,
   within sides, pixels and base64 budget) is fully decoded to prove it is complete and
   then sent untouched.
4. Otherwise shrink cheaply first: JPEG DCT scaling (``draft``) or ``reduce()``; an
   integer shrink that lands within half an octave below the target is accepted as the
   result (it saves a full-resolution decode and resample, and costs at most half the
   pixels of the allowed maximum); else LANCZOS (with ``reducing_gap``) to the exact fit.
5. Normalise to 8-bit RGB (CMYK, palette, alpha flattened onto white, 16-bit, grey),
   apply the EXIF orientation, encode JPEG once at a good quality, and only if that is
   over budget search quality and then scale, in a bounded number of encodes.

Everything here is per call: safe to run concurrently from worker threads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image, ImageFile

from worker.errors import InvalidImage
from worker.image_limits import ImageLimits, PreparedImage
from worker.imaging.encode import (
    _encode_to_budget,
    _prepared,
    b64_length,
    to_rgb,
)
from worker.imaging.sniff import (
    _DECODE_ERRORS,
    _TRANSPOSE,
    _check_pixels,
    _format,
    _is_animated,
    _is_plain,
    _load,
    _open,
    _orientation,
    _verify_complete,
    _verify_png,
    sniff,
)
from worker.imaging.strip import strip

__all__ = [
    "HALF_OCTAVE",
    "ImageInfo",
    "b64_length",
    "fit_size",
    "prepare",
    "probe",
    "sniff",
]

HALF_OCTAVE = 1 / math.sqrt(2)


@dataclass(frozen=True)
class ImageInfo:
    """What a header says: content format (Pillow name) and display size (EXIF applied)."""

    format: str
    width: int
    height: int


def probe(data: bytes) -> ImageInfo | None:
    """Header facts of an image we accept, else None. Never raises for bad input."""
    try:
        im = _open(data, sniff(data))
        w, h = im.size
        if _orientation(im, cheap=True) >= 5:
            w, h = h, w
        return ImageInfo(_format(im), w, h)
    except (InvalidImage, *_DECODE_ERRORS):
        return None


def fit_size(width: int, height: int, limits: ImageLimits) -> tuple[int, int]:
    """The largest size with this aspect ratio within max_side and max_pixels."""
    scale = 1.0
    if limits.max_side is not None and max(width, height) > limits.max_side:
        scale = limits.max_side / max(width, height)
    if limits.max_pixels is not None and width * height * scale * scale > limits.max_pixels:
        scale = min(scale, math.sqrt(limits.max_pixels / (width * height)))
    if scale >= 1.0:
        return width, height
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    # Rounding may overshoot by a pixel: step the longer side down until it fits.
    while not _within(w, h, limits):
        w, h = (w - 1, h) if w >= h else (w, h - 1)
    return w, h


def _within(w: int, h: int, limits: ImageLimits) -> bool:
    if limits.max_side is not None and max(w, h) > limits.max_side:
        return False
    return limits.max_pixels is None or w * h <= limits.max_pixels


def prepare(data: bytes, limits: ImageLimits) -> PreparedImage:
    """Fit ``data`` to ``limits`` (see the module docstring) or raise InvalidImage."""
    expected = sniff(data)
    im = _open(data, expected)
    _check_pixels(im)
    fmt = _format(im)
    if fmt == "PNG":
        _verify_png(data)
    plain = _is_plain(im)  # before any load: the tile still tells the bit depth
    orientation = _orientation(im)
    w, h = im.size
    ow, oh = (h, w) if orientation >= 5 else (w, h)
    if min(ow, oh) < limits.min_side:
        raise InvalidImage(
            f"image too small: {ow}x{oh}, shortest side {min(ow, oh)} < {limits.min_side} px"
        )
    tw, th = fit_size(ow, oh, limits)
    if min(tw, th) < limits.min_side:
        raise InvalidImage(
            f"cannot fit {ow}x{oh}: shrunk to {tw}x{th} for the size limits, its shortest "
            f"side {min(tw, th)} < {limits.min_side} px"
        )
    notes: list[str] = []
    if _is_animated(im):
        notes.append("animated: first frame used")
    if (
        fmt in limits.formats
        and (tw, th) == (ow, oh)
        and orientation == 1
        and plain
        and b64_length(len(data)) <= limits.max_b64_bytes
    ):
        _verify_complete(im, fmt)
        return _prepared(strip(data), fmt, ow, oh, transformed=False, notes=notes, limits=limits)
    rgb = _decode_fitted(im, fmt, (tw, th) if orientation < 5 else (th, tw), limits)
    if orientation != 1:
        rgb = rgb.transpose(_TRANSPOSE[orientation])
    return _encode_to_budget(rgb, limits, notes)


def _shrink_plan(w: int, h: int, tw: int, th: int, limits: ImageLimits) -> tuple[int, bool]:
    """Integer shrink factor (1, 2, 4, 8) and whether its result is final (no resample)."""
    rec_short, rec_long = limits.recommended_min or (0, 0)
    for k in (8, 4, 2):
        rw, rh = -(-w // k), -(-h // k)  # DCT scaling and reduce() round up
        if rw >= tw and rh >= th:
            return k, (rw, rh) == (tw, th)
        near = max(rw, rh) >= max(tw, th) * HALF_OCTAVE
        keeps_min = min(rw, rh) >= limits.min_side
        keeps_rec = min(rw, rh) >= min(rec_short, min(tw, th)) and max(rw, rh) >= min(
            rec_long, max(tw, th)
        )
        if near and keeps_min and keeps_rec and _within(rw, rh, limits):
            return k, True
    return 1, False


def _decode_fitted(
    im: ImageFile.ImageFile, fmt: str, target: tuple[int, int], limits: ImageLimits
) -> Image.Image:
    """Decode to 8-bit RGB at ``target`` (raw orientation), or a little below it."""
    w, h = im.size
    k, final = _shrink_plan(w, h, *target, limits)
    if fmt == "JPEG" and k > 1:
        im.draft("RGB" if im.mode == "RGB" else None, (max(1, w // k), max(1, h // k)))
        if im.size == (-(-w // k), -(-h // k)):
            k = 1  # the DCT did the integer shrink
        elif im.size != (w, h):
            k, final = 1, False  # an unexpected scale: resample from whatever we got
    _load(im, fmt)
    out = to_rgb(im)
    if k > 1:
        out = out.reduce(k)
    if not final and out.size != target:
        out = out.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return out
