"""Normalisation and encoding: 8-bit RGB, then JPEG (or PNG/BMP) within the byte budget."""

from __future__ import annotations

import base64
import io
import math

from PIL import Image

from worker.errors import InvalidImage
from worker.image_limits import ImageLimits, PreparedImage

FIRST_QUALITY = 90  # one encode at a quality that keeps plate/licence text crisp
SHRINK_QUALITY = 75  # when pixels must go too, keep this quality for what remains
MAX_ENCODES = 10  # hard bound on encodes per image
CLOSE_ENOUGH = 0.85  # of the byte budget: a fitting encode this big is not improved on
# JPEG size relative to quality 90 (libjpeg-turbo, 4:2:0), a middle of photos, noise
# and flat scans; each encode recalibrates the absolute level. The lowest key (50) is
# the floor: below it, text artefacts cost more than losing pixels.
_SIZE_AT = {90: 1.0, 85: 0.8, 80: 0.68, 75: 0.6, 70: 0.54, 65: 0.49, 60: 0.45, 55: 0.42, 50: 0.38}


def b64_length(n: int) -> int:
    """Length of the base64 text of ``n`` bytes (padded)."""
    return 4 * ((n + 2) // 3)


def to_rgb(im: Image.Image, *, keep_grey: bool = False) -> Image.Image:
    """8-bit RGB: alpha flattened onto white, 16-bit and float scaled, CMYK converted.
    ``keep_grey``: grey stays 8-bit grey (a quarter of the memory, to resample in).

    Each step holds its source and one product, no more than ~8 bytes a pixel in all
    (see worker/imaging/budget.py).
    """
    mode = im.mode
    if mode.startswith("I;16"):
        # The high byte of every sample: 16 bits to 8 without a 32-bit copy.
        raw = "L;16B" if mode == "I;16B" else "L;16"
        im = Image.frombytes("L", im.size, im.tobytes(), "raw", raw)
    elif mode in ("I", "F"):
        im = _stretched_to_grey(im)
    elif mode == "P" and "transparency" in im.info:
        im = _palette_on_white(im)
    elif mode in ("PA", "La", "RGBa"):
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    if im.mode in ("RGBA", "LA"):
        # RGBA onto white RGB, LA onto white grey; the mask is the image's own alpha band.
        white = Image.new("RGB" if im.mode == "RGBA" else "L", im.size, "white")
        white.paste(im, mask=im)
        im = white
    if im.mode == "RGB" or (keep_grey and im.mode == "L"):
        return im
    return im.convert("RGB")


_BAND_ROWS = 256  # rows scaled at a time from 32-bit grey


def _stretched_to_grey(im: Image.Image) -> Image.Image:
    """32-bit grey (I or F) stretched over 0-255, a band of rows at a time, so only the
    8-bit result is held beside the source, not a 32-bit copy of it."""
    extrema = im.getextrema()
    low, high = (float(v) for v in extrema if isinstance(v, int | float))
    scale = 255 / (high - low or 1.0)
    out = Image.new("L", im.size)
    for top in range(0, im.height, _BAND_ROWS):
        band = im.crop((0, top, im.width, min(im.height, top + _BAND_ROWS)))
        out.paste(band.point(lambda v: (v - low) * scale).convert("L"), (0, top))
    return out


def _palette_on_white(im: Image.Image) -> Image.Image:
    """A palette image with transparency flattened onto white by blending its palette
    entries, not its pixels: an RGB result beside a 1-byte copy, no RGBA image."""
    palette = im.getpalette("RGB") or []
    alpha = im.info.get("transparency")
    alphas = [255] * (len(palette) // 3)
    if isinstance(alpha, int) and 0 <= alpha < len(alphas):
        alphas[alpha] = 0
    elif isinstance(alpha, bytes):
        alphas[: len(alpha)] = list(alpha[: len(alphas)])
    else:
        return im.convert("RGBA")  # a form we do not know: the general way
    flat = im.copy()
    flat.info.pop("transparency")
    flat.putpalette(
        [
            round((c * alphas[i // 3] + 255 * (255 - alphas[i // 3])) / 255)
            for i, c in enumerate(palette)
        ]
    )
    return flat.convert("RGB")


def _encode(im: Image.Image, fmt: str, quality: int) -> bytes:
    """The pixels alone: no EXIF, ICC profile, comment, text or transparency key is
    written (Pillow would copy some from ``im.info``; a comment over 64 KB even fails)."""
    im.info = {}
    buf = io.BytesIO()
    if fmt == "JPEG":
        im.save(buf, "JPEG", quality=quality, subsampling="4:2:0")
    else:
        im.save(buf, fmt)
    return buf.getvalue()


def _output_format(limits: ImageLimits) -> str:
    for fmt in ("JPEG", "PNG", "BMP"):
        if fmt in limits.formats:
            return fmt
    raise ValueError(f"ImageLimits accept none of JPEG, PNG, BMP: {sorted(limits.formats)}")


def _encode_to_budget(im: Image.Image, limits: ImageLimits, notes: list[str]) -> PreparedImage:
    """Encode once at FIRST_QUALITY; if over budget, search quality, then scale down.

    Each encode calibrates a size model (bytes per pixel at q90 times _SIZE_AT) on this
    image, and the next candidate is the best quality predicted to fit between the best
    that fitted and the lowest that did not. A result under CLOSE_ENOUGH of the budget is
    searched upwards too: the model is a middle of images and may overshoot.
    """
    fmt = _output_format(limits)
    budget = limits.max_b64_bytes // 4 * 3  # raw bytes whose base64 fits
    if fmt != "JPEG":
        return _lossless_to_budget(im, fmt, budget, limits, notes)
    quality, size = FIRST_QUALITY, 0
    best: bytes | None = None  # the best-quality encode that fitted, at the current size
    fitted, over = 0, FIRST_QUALITY + 1  # qualities known to fit / to be over, this size
    for _ in range(MAX_ENCODES):
        data = _encode(im, fmt, quality)
        size = len(data)
        if size <= budget:
            best, fitted = data, quality
            if size >= budget * CLOSE_ENOUGH:
                break
        else:
            over = quality
        pixels = im.width * im.height
        bpp90 = size / pixels / _SIZE_AT[quality]
        candidates = [
            q for q in _SIZE_AT if fitted < q < over and bpp90 * _SIZE_AT[q] * pixels <= budget
        ]
        if candidates:
            quality = max(candidates)
            continue
        if best is not None:
            break
        # Not even the lowest quality fits: lose pixels instead, at SHRINK_QUALITY.
        quality, fitted, over = SHRINK_QUALITY, 0, FIRST_QUALITY + 1
        factor = math.sqrt(budget * 0.9 / (bpp90 * _SIZE_AT[quality] * pixels))
        smaller = _shrunk(im, factor, limits, notes)
        if smaller is None:
            break
        im = smaller
    if best is not None:
        return _prepared(best, fmt, *im.size, transformed=True, notes=notes, limits=limits)
    raise _over_budget(im, size, limits)


def _lossless_to_budget(
    im: Image.Image, fmt: str, budget: int, limits: ImageLimits, notes: list[str]
) -> PreparedImage:
    """PNG/BMP only vendors: no quality knob, so scale until the bytes fit."""
    size = 0
    for _ in range(MAX_ENCODES):
        data = _encode(im, fmt, 0)
        size = len(data)
        if size <= budget:
            return _prepared(data, fmt, *im.size, transformed=True, notes=notes, limits=limits)
        smaller = _shrunk(im, math.sqrt(budget / size) * 0.9, limits, notes)
        if smaller is None:
            break
        im = smaller
    raise _over_budget(im, size, limits)


def _shrunk(
    im: Image.Image, factor: float, limits: ImageLimits, notes: list[str]
) -> Image.Image | None:
    """``im`` scaled by ``factor`` (and noted), or None if that would break ``min_side``."""
    new = (max(1, int(im.width * factor)), max(1, int(im.height * factor)))
    if min(new) < limits.min_side:
        return None
    notes.append(f"scaled to {new[0]}x{new[1]} to fit the byte budget")
    return im.resize(new, Image.Resampling.LANCZOS, reducing_gap=2.0)


def _over_budget(im: Image.Image, size: int, limits: ImageLimits) -> InvalidImage:
    """The refusal when the last encode (``size`` bytes, of ``im``) is still too big."""
    return InvalidImage(
        f"cannot fit within {limits.max_b64_bytes:,} bytes of base64 "
        f"(still {b64_length(size):,} at {im.width}x{im.height})"
    )


def _prepared(
    data: bytes,
    fmt: str,
    width: int,
    height: int,
    *,
    transformed: bool,
    notes: list[str],
    limits: ImageLimits,
) -> PreparedImage:
    b64 = base64.b64encode(data)
    if len(b64) > limits.max_b64_bytes:  # the contract the vendors enforce: check it, always
        raise InvalidImage(f"cannot fit within {limits.max_b64_bytes:,} bytes of base64")
    if limits.recommended_min is not None:
        short, long = limits.recommended_min
        if min(width, height) < short or max(width, height) < long:
            notes.append(f"{width}x{height} is below the recommended {short}x{long}")
    return PreparedImage(
        data=data,
        b64=b64,
        format=fmt,
        width=width,
        height=height,
        transformed=transformed,
        warnings=tuple(notes),
    )
