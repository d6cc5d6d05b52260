"""Content identification: what the bytes are, opened with only the allowed plugins.

Magic bytes decide the format (never the name); refused formats are named in the
message and never reach a Pillow decoder. Also here: the decode-error messages, the
pixel-count check, the cheap facts read before any decode (plain pixels, animation,
EXIF orientation) and the checks that a file is complete.
"""

from __future__ import annotations

import io
import struct

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
from worker.imaging import jpeg

# Importing the plugins registers them in Image.OPEN; only these are ever asked to open.
_PLUGINS = (BmpImagePlugin, GifImagePlugin, JpegImagePlugin, PngImagePlugin)
_PLUGINS_CONVERTED = (TiffImagePlugin, WebPImagePlugin)

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
    """The EXIF orientation still to apply, 1-8 (1 when absent or unreadable): Pillow's
    TIFF plugin applies its own (its size is upright from the header on, its pixels on
    load), every other plugin leaves it to us. ``cheap``: never decode for it."""
    if im.format == "TIFF":
        return 1
    if im.format == "PNG" and "exif" not in im.info:
        if cheap:
            return 1  # an eXIf chunk after the pixels: only a full decode would find it
        _load(im, "PNG")  # getexif() would load too, but swallow a truncation
    try:
        value = im.getexif().get(0x0112, 1)
    except _DECODE_ERRORS:
        return 1  # a corrupt EXIF block: the vendor's decoder will ignore it as well
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


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


def _verify_complete(im: ImageFile.ImageFile, fmt: str, data: bytes) -> None:
    """Decode everything once so a truncated file is refused, not sent."""
    if fmt == "JPEG":
        # At 1/8 DCT scale libjpeg still reads every entropy-coded byte (so it notices
        # truncation) but skips most of the IDCT and colour work.
        im.draft(None, (max(1, im.width // 8), max(1, im.height // 8)))
    _load(im, fmt)
    if fmt == "JPEG":
        _check_jpeg_end(im, data)


def _check_jpeg_end(im: Image.Image, data: bytes) -> None:
    """Refuse a JPEG whose data ends before its pixels do (``im``: decoded from ``data``).

    A scan cut short and followed by an EOI (a cut file given an end marker, or a header
    claiming far more pixels than the data holds) decodes without an error: libjpeg fills
    the rest with flat grey. So an image whose last row is flat is decoded twice more at
    1/8 scale, with and without :func:`worker.imaging.jpeg.with_filler`. A cut inside the
    last row of blocks, or in a later scan of a progressive file (a complete, softer
    picture), is not detected.
    """
    if im.height < 1 or im.width < 1:
        return
    extrema = im.crop((0, im.height - 1, im.width, im.height)).getextrema()
    bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
    if any(low != high for low, high in bands):
        return
    filled = jpeg.with_filler(data)
    if filled is None:
        return
    try:
        same = _eighth(data) == _eighth(filled)
    except _DECODE_ERRORS:
        return  # no verdict; the decode that matters already succeeded
    if not same:
        w, h = _open(data, "JPEG").size
        raise InvalidImage(
            f"truncated JPEG: its data ends before its {w}x{h} pixels do "
            "(an end marker follows the cut)"
        )


def _eighth(data: bytes) -> bytes:
    """The pixels of ``data`` (a JPEG) decoded at 1/8 scale."""
    im = JpegImagePlugin.JpegImageFile(io.BytesIO(data))
    im.draft(None, (max(1, im.width // 8), max(1, im.height // 8)))
    return im.tobytes()
