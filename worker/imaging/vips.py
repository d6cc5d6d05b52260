"""Optional libvips path for ``exact`` fits of JPEG (``pip install 'vrec[vips]'``).

Pillow's LANCZOS resampler is plain C: fitting 24 MP to a 4096 px side costs it ~320 ms
of ~460, where libvips (SIMD, streaming decode -> resample -> encode) does the whole fit
in ~230 (bench/imaging.py measures both in one run). Only plain 8-bit RGB JPEGs that
need resampling come here, after every check Pillow makes on the header (format by
content, pixel cap, orientation).

libvips runs strict: any libjpeg warning fails it, so a scan cut short (which libjpeg
only warns about) never gets through here. Whatever libvips refuses, and a result over
the byte budget, goes the Pillow way instead, which tells a cut file from a merely
untidy one and searches quality: this path only ever gives the same answer sooner.
"""

from __future__ import annotations

from typing import Any

try:  # pyvips[binary] brings libvips; without it, or with a broken libvips, Pillow does all
    import pyvips

    pyvips.cache_set_max(0)  # vips caches operations (and their pixels) by default
    _VIPS: Any = pyvips
except (ImportError, OSError):
    _VIPS = None


def available() -> bool:
    return _VIPS is not None


def fit_jpeg(data: bytes, size: tuple[int, int], *, rotate: bool, quality: int) -> bytes | None:
    """``data`` (a JPEG) resampled to ``size`` (LANCZOS-3), turned upright by its EXIF
    orientation if ``rotate``, encoded as a baseline 4:2:0 JPEG at ``quality`` with no
    metadata; None if libvips reports anything at all about the input."""
    try:
        out = _VIPS.Image.thumbnail_buffer(
            data,
            size[0],
            height=size[1],
            size="force",
            no_rotate=not rotate,
            option_string="fail_on=warning",  # to the loader: thumbnail's own has no effect
        )
        if out.format != "uchar" or out.bands != 3 or (out.width, out.height) != size:
            return None
        encoded: bytes = out.jpegsave_buffer(Q=quality, subsample_mode="on", keep="none")
    except _VIPS.Error:
        return None
    return encoded
