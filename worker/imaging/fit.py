"""Decoding to a target size, ``fast`` or ``exact`` (:data:`worker.config.FitMode`).

``fast``: shrink at decode time only where that is cheap, JPEG DCT scaling (``draft``) or
    ``reduce()``; an integer shrink landing within half an octave below the target is
    taken as the result (24 MP to a 4096 px side comes out 3000x2000, not 4096x2731: up
    to ~30% less side, SSIM ~0.96 against an exact LANCZOS fit, about 4x cheaper).
``exact``: the vendor's full allowed size. A JPEG is DCT-scaled to the smallest power of
    two still at least the target, then resampled once (LANCZOS; ``reducing_gap`` box
    reduces what remains above 3x, where that is indistinguishable from a fair resample).

Both normalise to 8-bit RGB and apply whatever EXIF orientation the loader left to do.
Every step holds its source and one product only (the source is closed as soon as the
product exists), so decoding holds at most ~8 bytes per pixel of the image
(:mod:`worker.imaging.budget` relies on it).
"""

from __future__ import annotations

import math

from PIL import Image, ImageFile

from worker.config import FitMode
from worker.image_limits import ImageLimits
from worker.imaging.encode import to_rgb
from worker.imaging.sniff import _TRANSPOSE, _check_jpeg_end, _load

HALF_OCTAVE = 1 / math.sqrt(2)
# Resampling: box-reduce first while the ratio stays above this many times the target.
REDUCING_GAP: dict[FitMode, float] = {"fast": 2.0, "exact": 3.0}


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
    while not within(w, h, limits):
        w, h = (w - 1, h) if w >= h else (w, h - 1)
    return w, h


def within(w: int, h: int, limits: ImageLimits) -> bool:
    if limits.max_side is not None and max(w, h) > limits.max_side:
        return False
    return limits.max_pixels is None or w * h <= limits.max_pixels


def shrink_plan(
    w: int, h: int, tw: int, th: int, limits: ImageLimits, fit: FitMode, *, dct: bool
) -> tuple[int, bool]:
    """Integer shrink factor (1, 2, 4, 8) before resampling, and whether its result is final.

    ``dct``: the shrink is JPEG DCT scaling (a good low-pass), not a box ``reduce()``;
    ``exact`` uses only that and leaves the rest to the resampler's own ``reducing_gap``.
    """
    if fit == "exact" and not dct:
        return 1, False
    for k in (8, 4, 2):
        rw, rh = -(-w // k), -(-h // k)  # DCT scaling and reduce() round up
        if rw >= tw and rh >= th:
            return k, (rw, rh) == (tw, th)
        if fit == "fast" and _near_enough(rw, rh, tw, th, limits):
            return k, True
    return 1, False


def _near_enough(rw: int, rh: int, tw: int, th: int, limits: ImageLimits) -> bool:
    """An integer shrink within half an octave below the target that keeps every minimum."""
    rec_short, rec_long = limits.recommended_min or (0, 0)
    near = max(rw, rh) >= max(tw, th) * HALF_OCTAVE
    keeps_min = min(rw, rh) >= limits.min_side
    keeps_rec = min(rw, rh) >= min(rec_short, min(tw, th)) and max(rw, rh) >= min(
        rec_long, max(tw, th)
    )
    return near and keeps_min and keeps_rec and within(rw, rh, limits)


def decode_fitted(
    im: ImageFile.ImageFile,
    fmt: str,
    data: bytes,
    target: tuple[int, int],
    orientation: int,
    limits: ImageLimits,
    fit: FitMode,
) -> Image.Image:
    """``im`` decoded to upright 8-bit RGB at ``target`` (display orientation), or for
    ``fast`` a little below it. ``im`` is closed on the way (its pixels freed early)."""
    w, h = im.size
    raw_target = target if orientation < 5 else (target[1], target[0])
    k, final = shrink_plan(w, h, *raw_target, limits, fit, dct=fmt == "JPEG")
    if fmt == "JPEG" and k > 1:
        im.draft("RGB" if im.mode == "RGB" else None, (max(1, w // k), max(1, h // k)))
        if im.size == (-(-w // k), -(-h // k)):
            k = 1  # the DCT did the integer shrink
        elif im.size != (w, h):
            k, final = 1, False  # an unexpected scale: resample from whatever we got
    _load(im, fmt)
    if fmt == "JPEG":
        _check_jpeg_end(im, data)
    out = _then(im, to_rgb(im, keep_grey=True))
    if k > 1:
        out = _then(out, out.reduce(k))
    if not final and out.size != raw_target:
        out = resize(out, raw_target, REDUCING_GAP[fit])
    out = _then(out, to_rgb(out))
    if orientation != 1:
        out = _then(out, out.transpose(_TRANSPOSE[orientation]))
    return out


def resize(im: Image.Image, size: tuple[int, int], reducing_gap: float) -> Image.Image:
    """LANCZOS to ``size``, one axis per pass: Pillow's own two passes would hold the
    source, the intermediate and the result at once. ``im`` is closed."""
    if size[0] != im.width and size[1] != im.height:
        im = _then(
            im, im.resize((size[0], im.height), Image.Resampling.LANCZOS, None, reducing_gap)
        )
    if im.size != size:
        im = _then(im, im.resize(size, Image.Resampling.LANCZOS, None, reducing_gap))
    return im


def _then(source: Image.Image, product: Image.Image) -> Image.Image:
    """``product``, made from ``source``, whose pixels are freed now (not when the caller
    returns) unless the step returned the source itself."""
    if product is not source:
        source.close()
    return product
