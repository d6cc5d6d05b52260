"""Optional libvips resampling for ``exact`` fits (``pip install 'vrec[vips]'``).

Pillow's LANCZOS resampler is plain C: fitting 24 MP to a 4096 px side costs it ~320 ms
of the ~460 ms, where libvips (SIMD, streaming) decodes and resamples the same in ~180
(bench/imaging.py measures both in one run). Only plain 8-bit grey or RGB JPEG and PNG
that need resampling go this way; everything else, and every check before it (format by
content, pixel cap, orientation), stays with Pillow. The result comes back as a Pillow
image, so the encoder and its byte budget are the same for both.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from worker.errors import InvalidImage

try:  # pyvips[binary] brings libvips; without it, or with a broken libvips, Pillow does all
    import pyvips

    pyvips.cache_set_max(0)  # vips caches operations (and their pixels) by default
    _VIPS: Any = pyvips
except (ImportError, OSError):
    _VIPS = None

FORMATS = frozenset({"JPEG", "PNG"})


def available() -> bool:
    return _VIPS is not None


def fit(data: bytes, fmt: str, size: tuple[int, int]) -> Image.Image:
    """``data`` decoded and LANCZOS-3 resampled to ``size`` by libvips, as an 8-bit RGB
    Pillow image, in stored orientation (EXIF not applied: the caller does, as for Pillow).
    """
    try:
        out = _VIPS.Image.thumbnail_buffer(
            data, size[0], height=size[1], size="force", no_rotate=True, fail_on="truncated"
        )
        if out.format != "uchar" or out.bands not in (1, 3):
            raise InvalidImage(f"corrupt {fmt} (libvips read {out.bands} bands of {out.format})")
        pixels = out.write_to_memory()
    except _VIPS.Error as exc:
        raise InvalidImage(_message(fmt, exc)) from exc
    if out.bands == 3:
        return Image.frombytes("RGB", (out.width, out.height), pixels)
    return Image.frombytes("L", (out.width, out.height), pixels).convert("RGB")


def _message(fmt: str, exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if "premature end" in text.lower() or "truncated" in text.lower():
        return f"truncated {fmt}: its data ends before its pixels do"
    return f"corrupt {fmt} (libvips: {text[:120]})"
