"""A generated corpus of awkward and hostile image inputs (no binary fixtures committed).

Each :class:`Case` says what must happen for each vendor: a specific ``invalid_image``
reason (a regex on the message), or a fitted result (optionally untouched bytes, an exact
output size, a warning). Vendor limits are literals from shared/vendor-docs.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from worker.image_limits import ImageLimits

JPB = frozenset({"JPEG", "PNG", "BMP"})
VENDORS: dict[str, ImageLimits] = {
    "juhe_car": ImageLimits(JPB, 4_000_000, min_side=15, max_side=4096),
    "juhe_plate": ImageLimits(JPB, 4_000_000, min_side=15, max_side=4096),  # doc silent
    "tianapi_plate": ImageLimits(JPB, 3_000_000),
    "tencent_vehicle_license": ImageLimits(JPB, 7_000_000, min_side=32, recommended_min=(500, 800)),
    "aliyun_plate": ImageLimits(JPB, 4_000_000, min_side=15),
}
WITH_MAX_SIDE = ("juhe_car", "juhe_plate")


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def photo(size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> Image.Image:
    """Photo-like content (smooth gradients plus noise): compresses like a real photo."""
    w, h = size
    noise = Image.effect_noise((max(1, w // 4), max(1, h // 4)), 40 + seed % 20)
    noise = noise.resize((w, h), Image.Resampling.BILINEAR)
    ramp = Image.linear_gradient("L").resize((w, h))
    base = Image.merge("RGB", (noise, ramp, ramp.transpose(Image.Transpose.ROTATE_180)))
    return base if mode == "RGB" else base.convert(mode)


def png_chunks(*chunks: tuple[bytes, bytes]) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for kind, data in chunks:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        out += struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
    return out


def crafted_png(w: int, h: int, depth: int, colour: int, rows: bytes | None) -> bytes:
    """A PNG written by hand: any header, IDAT of ``rows`` (filter bytes included)."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    idat = zlib.compress(rows if rows is not None else b"\x00" * 64)
    return png_chunks((b"IHDR", ihdr), (b"IDAT", idat), (b"IEND", b""))


def png48(w: int, h: int) -> bytes:
    """16 bits per sample RGB (Pillow opens it as 8-bit RGB, so its rawmode tells)."""
    row = b"\x00" + b"".join(struct.pack(">HHH", x * 600, 30000, 65535 - x * 600) for x in range(w))
    return crafted_png(w, h, 16, 2, row * h)


def jpeg_with_size(w: int, h: int) -> bytes:
    """A small valid JPEG whose SOF0 header claims ``w`` x ``h``."""
    data = bytearray(encode(photo((64, 48)), "JPEG", quality=80))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def bmp_header_only(w: int, h: int) -> bytes:
    header = struct.pack("<2sIHHI", b"BM", 54, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return header + info + b"\x00" * 64


def with_exif(im: Image.Image, orientation: int, fmt: str = "JPEG") -> bytes:
    """``im`` stored as ``fmt`` with an EXIF orientation (every format Pillow writes it to:
    JPEG and WebP EXIF, PNG eXIf, TIFF's own tag)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    quality = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    return encode(im, fmt, exif=exif.tobytes(), **quality)


def quadrants(size: tuple[int, int] = (120, 80)) -> Image.Image:
    """Red, blue, green and white quadrants: every flip and rotation looks different."""
    w, h = size
    im = Image.new("RGB", size, (255, 255, 255))
    im.paste((255, 0, 0), (0, 0, w // 2, h // 2))
    im.paste((0, 0, 255), (w // 2, 0, w, h // 2))
    im.paste((0, 160, 0), (0, h // 2, w // 2, h))
    return im


def cut_with_end_marker(data: bytes, keep: float) -> bytes:
    """A JPEG cut after ``keep`` of its bytes, then given an EOI as if it were complete."""
    return data[: int(len(data) * keep)] + b"\xff\xd9"


def mpo(*frames: Image.Image) -> bytes:
    """A multi-picture JPEG, as phones write for depth or burst shots."""
    return encode(frames[0], "MPO", save_all=True, append_images=list(frames[1:]), quality=90)


def palette_with_transparency() -> bytes:
    im = Image.new("P", (120, 80), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.paste(1, (30, 20, 90, 60))
    return encode(im, "PNG", transparency=0)


def rgba_png() -> bytes:
    im = Image.new("RGBA", (120, 80), (0, 0, 0, 0))  # transparent black: must become white
    im.paste((10, 20, 200, 255), (30, 20, 90, 60))
    return encode(im, "PNG")


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (80, 60), (i * 50, 255 - i * 50, 0)) for i in range(5)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def psd_header() -> bytes:
    return b"8BPS" + struct.pack(">H6sHIIHH", 1, b"", 3, 64, 64, 8, 3) + b"\x00" * 200


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], bytes]
    invalid: str | None = None  # regex of the reason for every vendor...
    per_vendor: Mapping[str, str | None] = field(default_factory=dict)  # ...or per vendor
    untouched: bool | None = None  # None: don't care
    size: tuple[int, int] | None = None  # exact output size where the vendor does not resize
    warning: str | None = None

    def reason(self, vendor: str) -> str | None:
        return self.per_vendor.get(vendor, self.invalid) if self.per_vendor else self.invalid


def _big_noisy_png() -> bytes:
    return encode(Image.effect_noise((1500, 1100), 90).convert("RGB"), "PNG")


def _bad_crc_png() -> bytes:
    data = bytearray(encode(photo((64, 64)), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 20] ^= 0xFF
    return bytes(data)


def _truncated(make: Callable[[], bytes], keep: float) -> Callable[[], bytes]:
    return lambda: (d := make())[: int(len(d) * keep)]


def _JPEG_SMALL() -> bytes:
    return encode(photo((640, 480)), "JPEG", quality=85)


_NOISY_GIF = lambda: encode(Image.effect_noise((200, 150), 80), "GIF")  # noqa: E731
_PNG_SMALL = lambda: encode(photo((640, 480)), "PNG")  # noqa: E731
_TOO_SMALL_FOR_TENCENT = {
    "tencent_vehicle_license": r"image too small: 20x20, shortest side 20 < 32 px"
}
_LONG_STRIP = {v: r"cannot fit 20x20000: shrunk to 4x4096" for v in WITH_MAX_SIDE} | {
    "tencent_vehicle_license": r"image too small: 20x20000, shortest side 20 < 32",
    "tianapi_plate": None,
    "aliyun_plate": None,
}

CORPUS: list[Case] = [
    # Not images at all, or images of formats we refuse (never decoded).
    Case("zero bytes", lambda: b"", r"^not an image \(empty file, 0 bytes\)$"),
    Case("text named .jpg", lambda: b"hello, this is not a photo\n" * 10, r"looks like text"),
    Case("html error page", lambda: b"<!doctype html><title>404</title>", r"looks like text"),
    Case("svg", lambda: b'<?xml version="1.0"?><svg xmlns="x"></svg>', r"^SVG is not accepted$"),
    Case("random binary", lambda: bytes(range(256)) * 8, r"unrecognised content, 2,048 bytes"),
    Case("EPS renamed .jpg", lambda: encode(Image.new("RGB", (20, 20)), "EPS"), r"^EPS is not"),
    Case("DOS EPS binary", lambda: b"\xc5\xd0\xd3\xc6" + b"\x00" * 100, r"^EPS is not accepted$"),
    Case("PostScript", lambda: b"%!PS-Adobe-3.0\n/x 1 def showpage\n", r"^EPS is not accepted$"),
    Case("PSD renamed .jpg", psd_header, r"^PSD \(Photoshop\) is not accepted$"),
    Case("PDF", lambda: encode(Image.new("RGB", (20, 20)), "PDF"), r"^PDF is not accepted$"),
    Case("ICO", lambda: encode(Image.new("RGB", (32, 32)), "ICO"), r"^ICO is not accepted$"),
    Case("JPEG 2000", lambda: encode(photo((64, 64)), "JPEG2000"), r"^JPEG 2000 is not"),
    Case("AVIF", lambda: encode(photo((64, 64)), "AVIF"), r"^AVIF is not accepted$"),
    Case("TGA (no magic)", lambda: encode(photo((64, 64)), "TGA"), r"unrecognised content"),
    Case("gzip", lambda: gzip.compress(b"x" * 100), r"^not an image \(gzip data\)$"),
    # Broken files of accepted formats.
    Case("truncated JPEG", _truncated(_JPEG_SMALL, 0.6), r"^truncated JPEG$"),
    Case("JPEG cut inside headers", _truncated(_JPEG_SMALL, 0.01), r"^truncated JPEG$"),
    Case("JPEG magic then junk", lambda: b"\xff\xd8\xff" + b"\x13" * 500, r"JPEG"),
    Case("truncated PNG", _truncated(_PNG_SMALL, 0.5), r"^truncated PNG$"),
    Case("PNG signature only", lambda: b"\x89PNG\r\n\x1a\n", r"^truncated PNG$"),
    Case("PNG with a bad CRC", _bad_crc_png, r"^corrupt PNG"),
    Case("PNG 0x0", lambda: crafted_png(0, 0, 8, 2, b""), r"PNG"),
    Case("GIF cut in its first frame", _truncated(_NOISY_GIF, 0.5), r"^truncated GIF$"),
    Case("GIF cut after its first frame", _truncated(animated_gif, 0.5), untouched=False),
    # Bombs and lies about size.
    Case(
        "decompression bomb (1-bit PNG, 100 MP)",
        lambda: encode(Image.new("1", (10_000, 10_000)), "PNG"),
        r"^decompression bomb: 10000x10000 = 100,000,000 pixels exceeds 89,478,485",
    ),
    Case(
        "huge PNG header, tiny file",
        lambda: crafted_png(40_000, 40_000, 8, 2, None),
        r"^decompression bomb: 40000x40000",
    ),
    Case("huge JPEG header", lambda: jpeg_with_size(65_000, 65_000), r"^decompression bomb"),
    Case("huge BMP header", lambda: bmp_header_only(50_000, 50_000), r"^decompression bomb"),
    Case("9000x9000 PNG, 100 bytes", lambda: crafted_png(9000, 9000, 8, 0, None), r"truncated PNG"),
    # Sizes.
    Case(
        "1x1",
        lambda: encode(Image.new("RGB", (1, 1)), "PNG"),
        per_vendor=dict.fromkeys(VENDORS, r"^image too small: 1x1, ") | {"tianapi_plate": None},
    ),
    Case(
        "10x5000",
        lambda: encode(Image.new("L", (10, 5000)), "PNG"),
        per_vendor={
            v: rf"^image too small: 10x5000, shortest side 10 < {VENDORS[v].min_side} px$"
            for v in VENDORS
        }
        | {"tianapi_plate": None},
    ),
    Case(
        "20x20000 strip",
        lambda: encode(Image.new("L", (20, 20000), 128), "PNG"),
        per_vendor=_LONG_STRIP,
    ),
    Case(
        "20x20",
        lambda: encode(photo((20, 20)), "PNG"),
        per_vendor=_TOO_SMALL_FOR_TENCENT | {"juhe_car": None},
        untouched=True,
    ),
    # Pixel formats that get normalised.
    Case(
        "CMYK JPEG",
        lambda: encode(photo((300, 200), "CMYK"), "JPEG"),
        untouched=False,
        size=(300, 200),
    ),
    Case(
        "16-bit grey PNG",
        lambda: encode(Image.linear_gradient("L").convert("I;16"), "PNG"),
        untouched=False,
    ),
    Case("48-bit RGB PNG", lambda: png48(64, 40), untouched=False, size=(64, 40)),
    Case("palette + transparency", palette_with_transparency, untouched=False, size=(120, 80)),
    Case("RGBA PNG", rgba_png, untouched=False, size=(120, 80)),
    Case("LA PNG", lambda: encode(photo((100, 60), "LA"), "PNG"), untouched=False),
    Case("1-bit PNG", lambda: encode(photo((100, 60), "1"), "PNG"), untouched=False),
    Case("animated GIF", animated_gif, untouched=False, size=(80, 60), warning="animated"),
    Case("static GIF", lambda: encode(photo((90, 70), "P"), "GIF"), untouched=False, size=(90, 70)),
    Case("WebP", lambda: encode(photo((200, 100)), "WEBP"), untouched=False, size=(200, 100)),
    Case("WebP with alpha", lambda: encode(photo((200, 100), "RGBA"), "WEBP"), untouched=False),
    Case(
        "TIFF LZW",
        lambda: encode(photo((200, 100)), "TIFF", compression="tiff_lzw"),
        untouched=False,
    ),
    Case("TIFF CMYK", lambda: encode(photo((200, 100), "CMYK"), "TIFF"), untouched=False),
    Case("TIFF float", lambda: encode(photo((50, 40), "F"), "TIFF"), untouched=False),
    # Orientation.
    Case(
        "EXIF rotate 90 (6)",
        lambda: with_exif(photo((400, 200)), 6),
        untouched=False,
        size=(200, 400),
    ),
    Case(
        "EXIF rotate 180 (3)",
        lambda: with_exif(photo((400, 200)), 3),
        untouched=False,
        size=(400, 200),
    ),
    Case(
        "EXIF transverse (7)",
        lambda: with_exif(photo((400, 200)), 7),
        untouched=False,
        size=(200, 400),
    ),
    Case("EXIF identity (1)", lambda: with_exif(photo((400, 200)), 1), untouched=True),
    Case(
        "TIFF with EXIF rotate 90 (6)",
        lambda: with_exif(photo((400, 200)), 6, "TIFF"),
        untouched=False,
        size=(200, 400),
    ),
    Case(
        "WebP with EXIF rotate 90 (8)",
        lambda: with_exif(photo((400, 200)), 8, "WEBP"),
        untouched=False,
        size=(200, 400),
    ),
    # Multi-picture and lying JPEGs.
    Case(
        "MPO (two pictures)",
        lambda: mpo(photo((400, 300)), photo((400, 300), seed=7)),
        untouched=False,
        size=(400, 300),
        warning="MPO",
    ),
    Case(
        "JPEG cut, end marker appended",
        lambda: cut_with_end_marker(_JPEG_SMALL(), 0.6),
        r"^truncated JPEG: its data ends before its 640x480 pixels do",
    ),
    Case(
        "JPEG header claims 4000x3000",
        lambda: jpeg_with_size(4000, 3000),
        r"^truncated JPEG: its data ends before its 4000x3000 pixels do",
    ),
    # Fits already: sent as it is.
    Case("baseline JPEG", _JPEG_SMALL, untouched=True, size=(640, 480)),
    Case(
        "progressive JPEG",
        lambda: encode(photo((640, 480)), "JPEG", progressive=True),
        untouched=True,
    ),
    Case("grey JPEG", lambda: encode(photo((640, 480), "L"), "JPEG"), untouched=True),
    Case("BMP 24-bit", lambda: encode(photo((300, 200)), "BMP"), untouched=True, size=(300, 200)),
    Case("opaque palette PNG", lambda: encode(photo((300, 200), "P"), "PNG"), untouched=True),
    # Too big: shrunk, re-encoded.
    Case(
        "5000x3000 JPEG",
        lambda: encode(photo((5000, 3000)), "JPEG", quality=80),
        per_vendor=dict.fromkeys(VENDORS, None),
    ),
    Case("noisy 1500x1100 PNG over 3 MB", _big_noisy_png, per_vendor=dict.fromkeys(VENDORS, None)),
]
