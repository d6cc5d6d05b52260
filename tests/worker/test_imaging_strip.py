"""worker.imaging.strip: metadata out, the very same pixels in, no re-encode."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, PngImagePlugin

from worker.image_limits import ImageLimits
from worker.imaging import prepare
from worker.imaging.strip import strip


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 1  # upright: the untouched path takes it
    exif[0x010F] = "PhoneMaker"
    exif[0x010E] = "GPS secret 31.2304N 121.4737E"  # ImageDescription
    data = exif.tobytes()
    return data if data.startswith(b"Exif") else b"Exif\x00\x00" + data


EXIF_GPS = _exif()
XMP = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>serial 12345</x:xmpmeta>"


def _photo(mode: str = "RGB", size: tuple[int, int] = (96, 64)) -> Image.Image:
    image = Image.linear_gradient("L").resize(size).convert(mode)
    return image


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _with_segments(jpeg: bytes, *segments: bytes) -> bytes:
    """``segments`` inserted right after SOI (where cameras put them)."""
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def _markers(jpeg: bytes) -> list[tuple[int, bytes]]:
    """(marker, first payload bytes) of every segment before the first scan."""
    found, pos = [], 2
    while jpeg[pos + 1] != 0xDA:
        (length,) = struct.unpack(">H", jpeg[pos + 2 : pos + 4])
        found.append((jpeg[pos + 1], jpeg[pos + 4 : pos + 16]))
        pos += 2 + length
    return found


def _pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.mode, image.size, image.tobytes()


def _jpeg(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, **options)
    return out.getvalue()


@pytest.mark.parametrize(
    "options",
    [{}, {"progressive": True}, {"restart_marker_blocks": 4}, {"icc_profile": b"\0" * 3000}],
    ids=["baseline", "progressive", "restart-markers", "icc"],
)
def test_jpeg_metadata_goes_the_pixels_stay(options: dict[str, object]) -> None:
    plain = _jpeg(_photo(), **options)
    tagged = _with_segments(
        plain,
        _segment(0xE1, EXIF_GPS),
        _segment(0xE1, XMP),
        _segment(0xFE, b"shot by a phone, serial 12345"),
        _segment(0xED, b"Photoshop 3.0\x008BIM caption"),
        _segment(0xEF, b"private maker note"),
    )
    stripped = strip(tagged)
    assert _pixels(stripped) == _pixels(tagged)  # decoded exactly alike: nothing re-encoded
    kept = {(marker, head[:5]) for marker, head in _markers(stripped) if 0xE0 <= marker <= 0xEF}
    assert kept <= {(0xE0, b"JFIF\x00"), (0xE2, b"ICC_P")}
    assert all(marker != 0xFE for marker, _ in _markers(stripped))
    for secret in (b"GPS secret", b"serial 12345", b"8BIM", b"maker note"):
        assert secret not in stripped
    assert stripped == strip(plain)  # what is left is the plain encoder's file
    if "icc_profile" in options:
        with Image.open(io.BytesIO(stripped)) as image:
            assert image.info["icc_profile"] == b"\0" * 3000


def test_cmyk_jpeg_keeps_adobe_and_decodes_alike() -> None:
    plain = _jpeg(_photo("CMYK"))
    assert any(marker == 0xEE for marker, _ in _markers(plain))  # Pillow writes APP14 Adobe
    tagged = _with_segments(plain, _segment(0xFE, b"comment"))
    stripped = strip(tagged)
    assert any(m == 0xEE and head.startswith(b"Adobe") for m, head in _markers(stripped))
    assert _pixels(stripped) == _pixels(tagged)


def test_jpeg_bytes_after_the_image_go() -> None:
    first, second = _jpeg(_photo()), _jpeg(_photo(size=(40, 40)))
    stripped = strip(first + second)  # an MPO-like second picture appended
    assert stripped == first
    assert strip(first + b"\0" * 100) == first


@pytest.mark.parametrize(
    "broken",
    [b"\xff\xd8\xff\xe1\x00", b"\xff\xd8junk", b"\xff\xd8\xff\xfe\x00\x10short"],
    ids=["cut-in-length", "no-marker", "segment-past-end"],
)
def test_jpeg_it_cannot_follow_is_left_as_it_is(broken: bytes) -> None:
    assert strip(broken) == broken
    no_eoi = _jpeg(_photo())[:-2]
    assert strip(no_eoi) == no_eoi


def _png(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **options)
    return out.getvalue()


def _chunks(png: bytes) -> list[bytes]:
    found, pos = [], 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        found.append(png[pos + 4 : pos + 8])
        pos += 12 + length
    return found


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def test_png_text_time_exif_and_private_chunks_go() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "taken at home")
    info.add_text("Author", "someone", zip=True)
    info.add_itxt("Description", "描述", lang="zh")
    image = _photo("P")
    image.info["transparency"] = 0
    plain = _png(image, pnginfo=info, dpi=(300, 300), exif=b"Exif\0\0MM\0*GPS", transparency=0)
    ihdr_end = 8 + 25
    tagged = plain[:ihdr_end] + _chunk(b"tIME", b"\x07\xea\x03\x01\x0c\x00\x00")
    tagged += _chunk(b"prIv", b"maker data") + plain[ihdr_end:] + b"trailing bytes"
    stripped = strip(tagged)
    assert _pixels(stripped) == _pixels(tagged)
    kinds = _chunks(stripped)
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"  # noqa: PT018
    assert set(kinds) <= {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
    assert b"tRNS" in kinds and b"PLTE" in kinds  # noqa: PT018
    for secret in (b"taken at home", b"someone", b"GPS", b"maker data", b"trailing"):
        assert secret not in stripped


def test_png_colour_chunks_stay() -> None:
    plain = _png(_photo(), icc_profile=b"\0" * 500)
    ihdr_end = 8 + 25
    tagged = plain[:ihdr_end] + _chunk(b"gAMA", struct.pack(">I", 45455)) + plain[ihdr_end:]
    stripped = strip(tagged)
    assert {b"iCCP", b"gAMA"} <= set(_chunks(stripped))
    assert stripped == tagged  # nothing else was there to drop


def test_other_formats_and_broken_pngs_are_left_as_they_are() -> None:
    out = io.BytesIO()
    _photo().save(out, "BMP")
    assert strip(out.getvalue()) == out.getvalue()
    png = _png(_photo())
    assert strip(png[:-12]) == png[:-12]  # no IEND
    assert strip(png[:40]) == png[:40]  # a chunk past the end
    assert strip(b"not an image") == b"not an image"


def test_prepare_sends_an_image_that_fits_without_its_metadata() -> None:
    """The untouched path: same pixels, same size, no re-encode, no metadata."""
    plain = _jpeg(_photo(size=(640, 480)))
    tagged = _with_segments(
        plain, _segment(0xE1, EXIF_GPS), *(_segment(0xFE, b"c" * 60_000) for _ in range(2))
    )
    limits = ImageLimits(frozenset({"JPEG", "PNG", "BMP"}), 4_000_000, min_side=15)
    out = prepare(tagged, limits)
    assert out.transformed is False
    assert (out.width, out.height) == (640, 480)
    assert out.data == plain
    assert _pixels(out.data) == _pixels(tagged)
