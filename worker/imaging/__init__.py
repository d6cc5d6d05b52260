"""Untrusted image bytes -> what one provider accepts, or one specific :class:`InvalidImage`.

The provider declares *what* it accepts (:class:`ImageLimits`, from its doc) and how to
shrink (``fit``); this module does the mechanics, in this order:

1. Identify by content (magic bytes), never by name. JPEG, PNG and BMP may be sent as
   they are; WebP, GIF (first frame) and TIFF are converted; a multi-picture JPEG (MPO,
   from phones) is sent as its first picture, a plain JPEG; everything else is refused
   with its name ("EPS is not accepted") and is never handed to a Pillow decoder.
2. Open with only the allowed Pillow plugins, and refuse anything above Pillow's
   ``MAX_IMAGE_PIXELS`` ourselves (the warning band included), so no global is touched
   and the message carries the measured size.
3. Wait for room in the process's decode budget (:mod:`worker.imaging.budget`): pixels
   being decoded at once, over all threads, so memory is bounded whatever the input.
4. Measure against the limits in display orientation (EXIF applied): too small is
   invalid; an image that already fits (allowed format, plain 8-bit pixels, upright,
   within sides, pixels and base64 budget) is fully decoded to prove it is complete
   (a JPEG whose data ends before its pixels do is refused) and then sent untouched,
   its bytes as they came.
5. Otherwise fit (:mod:`worker.imaging.fit`): ``fast`` takes a cheap decode-time shrink
   that lands a little below the target, ``exact`` gives the full allowed size (a JPEG
   through libvips when installed and it has nothing to report: :mod:`.vips`).
   Normalise to 8-bit RGB (CMYK, palette, alpha flattened onto white, 16-bit, grey),
   apply the EXIF orientation, and encode JPEG once at a good quality, and only if
   that is over budget search quality and then scale, in a bounded number of encodes.
   A re-encoded image carries only its pixels: no EXIF, ICC profile, comment or text.

Everything here is per call: safe to run concurrently from worker threads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from PIL import ImageFile

from worker.config import FitMode
from worker.errors import InvalidImage
from worker.image_limits import ImageLimits, PreparedImage
from worker.imaging import jpeg, vips
from worker.imaging.budget import DecodeBudget, process_budget, size_process_budget
from worker.imaging.encode import (
    FIRST_QUALITY,
    _encode_to_budget,
    _output_format,
    _prepared,
    b64_length,
)
from worker.imaging.fit import HALF_OCTAVE, decode_fitted, fit_size
from worker.imaging.sniff import (
    _DECODE_ERRORS,
    _check_pixels,
    _format,
    _is_animated,
    _is_plain,
    _open,
    _orientation,
    _verify_complete,
    _verify_png,
    sniff,
)
from worker.imaging.strip import strip

__all__ = [
    "HALF_OCTAVE",
    "DecodeBudget",
    "ImageInfo",
    "b64_length",
    "fit_size",
    "prepare",
    "probe",
    "size_process_budget",
    "sniff",
]


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


def prepare(
    data: bytes,
    limits: ImageLimits,
    fit: FitMode = "exact",
    *,
    budget: DecodeBudget | None = None,
    use_vips: bool | None = None,
) -> PreparedImage:
    """Fit ``data`` to ``limits`` (see the module docstring) or raise InvalidImage.

    ``budget``: the decode budget to wait in (default: this process's). ``use_vips``:
    resample ``exact`` fits with libvips (default: when pyvips is installed).
    """
    im = _open(data, sniff(data))
    _check_pixels(im)
    if im.format == "MPO":
        return _first_picture(data, limits, fit, budget=budget, use_vips=use_vips)
    with (budget or process_budget()).claim(_claim(im)):
        try:
            return _fitted(
                data, im, limits, fit, vips.available() if use_vips is None else use_vips
            )
        finally:
            im.close()  # its pixels go before the claim does (the rest die with _fitted)


def _claim(im: ImageFile.ImageFile) -> int:
    """The pixels ``im`` claims in the decode budget: its own, more where its decoder alone
    holds more than the ~8 bytes a pixel that every later step stays within."""
    pixels = im.width * im.height
    if im.format == "WEBP":
        return 2 * pixels  # libwebp's two frame canvases, Pillow's copy, then ours: 16 B/px
    if im.format == "JPEG" and im.info.get("progressive"):
        return pixels * 3 // 2  # libjpeg holds every coefficient: up to 12 B/px (CMYK)
    return pixels


def _first_picture(
    data: bytes,
    limits: ImageLimits,
    fit: FitMode,
    *,
    budget: DecodeBudget | None,
    use_vips: bool | None,
) -> PreparedImage:
    """An MPO (a phone's several pictures in one file): its first, sent as a plain JPEG."""
    first = jpeg.first_picture(data)
    if _open(first, "JPEG").format != "JPEG":
        raise InvalidImage("corrupt MPO (its first picture is not a plain JPEG)")
    out = prepare(first, limits, fit, budget=budget, use_vips=use_vips)
    note = "multi-picture JPEG (MPO): its first picture sent"
    return dataclasses.replace(out, transformed=True, warnings=(note, *out.warnings))


def _fitted(
    data: bytes, im: ImageFile.ImageFile, limits: ImageLimits, fit: FitMode, use_vips: bool
) -> PreparedImage:
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
    target = fit_size(ow, oh, limits)
    if min(target) < limits.min_side:
        raise InvalidImage(
            f"cannot fit {ow}x{oh}: shrunk to {target[0]}x{target[1]} for the size limits, "
            f"its shortest side {min(target)} < {limits.min_side} px"
        )
    notes: list[str] = []
    if _is_animated(im):
        notes.append("animated: first frame used")
    fits = target == (ow, oh) and b64_length(len(data)) <= limits.max_b64_bytes
    if fits and orientation == 1 and plain and fmt in limits.formats:
        _verify_complete(im, fmt, data)
        return _prepared(strip(data), fmt, ow, oh, transformed=False, notes=notes, limits=limits)
    jpeg_in_jpeg_out = fmt == "JPEG" and im.mode == "RGB" and _output_format(limits) == "JPEG"
    if use_vips and fit == "exact" and target != (ow, oh) and jpeg_in_jpeg_out:
        rotate = orientation != 1
        encoded = vips.fit_jpeg(data, target, rotate=rotate, quality=FIRST_QUALITY)
        if encoded is not None and b64_length(len(encoded)) <= limits.max_b64_bytes:
            return _prepared(encoded, fmt, *target, transformed=True, notes=notes, limits=limits)
    rgb = decode_fitted(im, fmt, data, target, orientation, limits, fit)
    return _encode_to_budget(rgb, limits, notes)
