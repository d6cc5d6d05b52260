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

import base64
import io
import math
import struct
from dataclasses import dataclass

from PIL import (
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from worker.errors import InvalidImage
from worker.providers.base import ImageLimits, PreparedImage

# Importing the plugins registers them in Image.OPEN; only these are ever asked to open.
_PLUGINS = (BmpImagePlugin, GifImagePlugin, JpegImagePlugin, PngImagePlugin)
_PLUGINS_CONVERTED = (TiffImagePlugin, WebPImagePlugin)
SENT_AS_IS = ("JPEG", "PNG", "BMP")
CONVERTED = ("WEBP", "GIF", "TIFF")
_OPENERS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP")

FIRST_QUALITY = 90  # one encode at a quality that keeps plate/licence text crisp
SHRINK_QUALITY = 75  # when pixels must go too, keep this quality for what remains
MAX_ENCODES = 10  # hard bound on encodes per image
# JPEG size relative to quality 90 (libjpeg-turbo, 4:2:0), a middle of photos, noise
# and flat scans; each encode recalibrates the absolute level. The lowest key (50) is
# the floor: below it, text artefacts cost more than losing pixels.
_SIZE_AT = {90: 1.0, 85: 0.8, 80: 0.68, 75: 0.6, 70: 0.54, 65: 0.49, 60: 0.45, 55: 0.42, 50: 0.38}
HALF_OCTAVE = 1 / math.sqrt(2)

# Errors Pillow raises on malformed input (Warning: a warning promoted to an error).
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    KeyError,
    struct.error,
    ZeroDivisionError,
    Image.DecompressionBombError,
    Warning,
)

# Magic bytes of formats we name when refusing them (checked before any decoder runs).
_REFUSED = (
    (b"%!PS", "EPS is not accepted"),
    (b"\xc5\xd0\xd3\xc6", "EPS is not accepted"),
    (b"8BPS", "PSD (Photoshop) is not accepted"),
    (b"%PDF", "PDF is not accepted"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000 is not accepted"),
    (b"\xffO\xffQ", "JPEG 2000 is not accepted"),
    (b"\xff\x0a", "JPEG XL is not accepted"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL is not accepted"),
    (b"\x00\x00\x01\x00", "ICO is not accepted"),
    (b"qoif", "QOI is not accepted"),
    (b"DDS ", "DDS is not accepted"),
    (b"PK\x03\x04", "not an image (ZIP archive)"),
    (b"\x1f\x8b", "not an image (gzip data)"),
)
_ALLOWED_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
)
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class ImageInfo:
    """What a header says: content format (Pillow name) and display size (EXIF applied)."""

    format: str
    width: int
    height: int


def b64_length(n: int) -> int:
    """Length of the base64 text of ``n`` bytes (padded)."""
    return 4 * ((n + 2) // 3)


def sniff(data: bytes) -> str:
    """The allowed format the magic bytes name; raise InvalidImage naming anything else."""
    if not data:
        raise InvalidImage("not an image (empty file, 0 bytes)")
    for magic, name in _ALLOWED_MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for magic, message in _REFUSED:
        if data.startswith(magic):
            raise InvalidImage(message)
    if data[4:8] == b"ftyp":
        brand = data[8:12].decode("ascii", "replace").strip()
        kind = "AVIF" if brand.startswith("avi") else "HEIC/HEIF"
        if brand not in ("heic", "heix", "heim", "heis", "hevc", "mif1", "msf1", "avif", "avis"):
            kind = f"ISO media ({brand!r})"
        raise InvalidImage(f"{kind} is not accepted")
    head = data[:2048]
    if b"\x00" not in head:
        text = head.decode("utf-8", "ignore")
        printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
        if text and printable >= 0.95 * len(text):
            if "<svg" in text.lower():
                raise InvalidImage("SVG is not accepted")
            raise InvalidImage("not an image (content looks like text)")
    raise InvalidImage(f"not an image we accept (unrecognised content, {len(data):,} bytes)")


def _open(data: bytes, expected: str) -> ImageFile.ImageFile:
    """Open with the plugin the magic bytes named, and no other (no Image.open fallbacks)."""
    factory, accept = Image.OPEN[expected]
    if accept is not None and not accept(data[:16]):
        raise InvalidImage(f"corrupt {expected} header")
    try:
        # Calling the plugin directly skips Image.open's bomb check, which only warns
        # below 2x MAX_IMAGE_PIXELS; _check_pixels below refuses the whole band instead.
        im = factory(io.BytesIO(data), "")
    except _DECODE_ERRORS as exc:
        raise InvalidImage(_decode_message(expected, exc)) from exc
    return im


def _format(im: Image.Image) -> str:
    fmt = im.format or "?"
    return "JPEG" if fmt == "MPO" else fmt  # MPO: a phone's multi-picture JPEG


def _decode_message(fmt: str, exc: BaseException) -> str:
    text = str(exc)
    if (
        isinstance(exc, EOFError | struct.error)
        or "truncated" in text.lower()
        or "EOF" in text
        or "requires a buffer" in text  # struct.error re-raised as SyntaxError
    ):
        return f"truncated {fmt}"
    return f"corrupt {fmt} ({type(exc).__name__}: {text[:120]})"


def _check_pixels(im: Image.Image) -> None:
    w, h = im.size
    if w < 1 or h < 1:
        raise InvalidImage(f"corrupt {_format(im)} (size {w}x{h})")
    cap = Image.MAX_IMAGE_PIXELS
    if cap is not None and w * h > cap:
        raise InvalidImage(
            f"decompression bomb: {w}x{h} = {w * h:,} pixels exceeds {int(cap):,} pixels"
        )


def _orientation(im: ImageFile.ImageFile, *, cheap: bool = False) -> int:
    """EXIF orientation 1-8 (1 when absent or unreadable). ``cheap``: never decode for it."""
    if im.format == "PNG" and "exif" not in im.info:
        if cheap:
            return 1  # an eXIf chunk after the pixels: only a full decode would find it
        _load(im, "PNG")  # getexif() would load too, but swallow a truncation
    try:
        value = im.getexif().get(0x0112, 1)
    except _DECODE_ERRORS:
        return 1  # a corrupt EXIF block: the vendor's decoder will ignore it as well
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


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


def _is_plain(im: ImageFile.ImageFile) -> bool:
    """8-bit grey or RGB, or an opaque palette: what every vendor decoder reads as is."""
    if im.mode == "P":
        return "transparency" not in im.info
    if im.mode not in ("L", "RGB"):
        return False
    args = im.tile[0].args if im.tile else None
    return not (isinstance(args, str) and "16" in args)  # 48-bit PNG also opens as RGB


def _load(im: ImageFile.ImageFile, fmt: str) -> None:
    try:
        im.load()
    except _DECODE_ERRORS as exc:
        raise InvalidImage(_decode_message(fmt, exc)) from exc


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
        return _prepared(data, fmt, ow, oh, transformed=False, notes=notes, limits=limits)
    rgb = _decode_fitted(im, fmt, (tw, th) if orientation < 5 else (th, tw), limits)
    if orientation != 1:
        rgb = rgb.transpose(_TRANSPOSE[orientation])
    return _encode_to_budget(rgb, limits, notes)


def _is_animated(im: ImageFile.ImageFile) -> bool:
    # is_animated looks at the second frame only; n_frames would walk a hostile file.
    try:
        return bool(getattr(im, "is_animated", False))
    except _DECODE_ERRORS:
        return False
    finally:
        if im.tell() != 0:
            im.seek(0)


def _verify_png(data: bytes) -> None:
    """Chunk CRCs: Pillow's decoder skips them, libpng (the vendors' decoders) does not."""
    try:
        PngImagePlugin.PngImageFile(io.BytesIO(data)).verify()
    except _DECODE_ERRORS as exc:
        raise InvalidImage(_decode_message("PNG", exc)) from exc


def _verify_complete(im: ImageFile.ImageFile, fmt: str) -> None:
    """Decode everything once so a truncated file is refused, not sent."""
    if fmt == "JPEG":
        # At 1/8 DCT scale libjpeg still reads every entropy-coded byte (so it notices
        # truncation) but skips most of the IDCT and colour work.
        im.draft(None, (max(1, im.width // 8), max(1, im.height // 8)))
    _load(im, fmt)


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


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB: alpha flattened onto white, 16-bit and float scaled, CMYK converted."""
    mode = im.mode
    if mode.startswith("I;16"):
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif mode in ("I", "F"):
        extrema = im.getextrema()
        low, high = (float(v) for v in extrema if isinstance(v, int | float))
        span = high - low or 1.0
        im = im.convert("F").point(lambda v: (v - low) * (255 / span)).convert("L")
    elif (mode == "P" and "transparency" in im.info) or mode in ("PA", "La", "RGBa"):
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    if im.mode in ("RGBA", "LA"):
        rgba = im.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return im if im.mode == "RGB" else im.convert("RGB")


def _encode(im: Image.Image, fmt: str, quality: int) -> bytes:
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
    """Encode once at FIRST_QUALITY; if over budget, step quality down, then scale down.

    Each encode calibrates a size model (bytes per pixel at q90 times _SIZE_AT), so the
    next candidate is the best quality predicted to fit, not a blind bisection step.
    """
    fmt = _output_format(limits)
    budget = limits.max_b64_bytes // 4 * 3  # raw bytes whose base64 fits
    if fmt != "JPEG":
        return _lossless_to_budget(im, fmt, budget, limits, notes)
    quality, size = FIRST_QUALITY, 0
    for _ in range(MAX_ENCODES):
        data = _encode(im, fmt, quality)
        size = len(data)
        if size <= budget:
            return _prepared(data, fmt, *im.size, transformed=True, notes=notes, limits=limits)
        pixels = im.width * im.height
        bpp90 = size / pixels / _SIZE_AT[quality]  # calibrated on this image
        lower = [q for q in _SIZE_AT if q < quality and bpp90 * _SIZE_AT[q] * pixels <= budget]
        if lower:
            quality = max(lower)
            continue
        # Not even the lowest quality fits: lose pixels instead, at SHRINK_QUALITY.
        quality = SHRINK_QUALITY
        factor = math.sqrt(budget * 0.9 / (bpp90 * _SIZE_AT[quality] * pixels))
        new = (max(1, int(im.width * factor)), max(1, int(im.height * factor)))
        if min(new) < limits.min_side:
            break
        im = im.resize(new, Image.Resampling.LANCZOS, reducing_gap=2.0)
        notes.append(f"scaled to {new[0]}x{new[1]} to fit the byte budget")
    raise InvalidImage(
        f"cannot fit within {limits.max_b64_bytes:,} bytes of base64 "
        f"(still {b64_length(size):,} at {im.width}x{im.height})"
    )


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
        factor = math.sqrt(budget / size) * 0.9
        new = (max(1, int(im.width * factor)), max(1, int(im.height * factor)))
        if min(new) < limits.min_side:
            break
        im = im.resize(new, Image.Resampling.LANCZOS, reducing_gap=2.0)
        notes.append(f"scaled to {new[0]}x{new[1]} to fit the byte budget")
    raise InvalidImage(
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
