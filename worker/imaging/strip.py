"""Only the pixels: metadata dropped from a JPEG or PNG sent as it is, losslessly.

An image that already fits a vendor is sent untouched (no re-encode), but what it carries
beside its pixels (comments, EXIF with GPS and camera serials, XMP, thumbnails, text
chunks, a second picture of a phone's MPO) is nothing a vendor needs. :func:`strip`
copies the file segment by segment and leaves out everything decoding does not need:

- **JPEG**: every ``COM`` and ``APPn`` segment before the first scan except ``APP0``
  JFIF, ``APP14`` Adobe (its colour transform flag decides how the pixels decode) and
  ``APP2`` ICC_PROFILE (colours), wherever they are; tables, frame headers, scans and
  their entropy-coded data are copied as they are, up to the ``EOI`` (bytes after it,
  such as an MPO's second picture, are dropped). EXIF goes too: the untouched path only
  takes upright images (orientation 1), so no rotation is lost.
- **PNG**: only ``IHDR``, ``PLTE``, ``IDAT``, ``IEND`` and the chunks that change how the
  pixels look (``tRNS``, ``gAMA``, ``cHRM``, ``sRGB``, ``iCCP``, ``sBIT``) are kept, each
  with its CRC as it was; text (``tEXt``, ``zTXt``, ``iTXt``), ``tIME``, ``eXIf``,
  ``pHYs``, APNG animation chunks and private chunks go. Bytes after ``IEND`` go.
- Anything else (BMP, or a structure this reader does not follow) is returned unchanged.

The pixels are never decoded or re-encoded: the result decodes to exactly the same image.
"""

from __future__ import annotations

import struct
from typing import Final

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
PNG_KEPT: Final = frozenset(
    {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT"}
)
# APPn segments decoding needs, by marker and the identifier their payload starts with.
JPEG_KEPT: Final = {0xE0: b"JFIF\x00", 0xEE: b"Adobe", 0xE2: b"ICC_PROFILE\x00"}
_SOS, _EOI, _COM = 0xDA, 0xD9, 0xFE
# Markers that stand alone (no length): TEM, RST0-7 (SOI is read before the loop).
_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})


def strip(data: bytes) -> bytes:
    """``data`` without the metadata a vendor does not need (see the module docstring)."""
    if data.startswith(_PNG_SIGNATURE):
        return _strip_png(data)
    if data.startswith(b"\xff\xd8"):
        return _strip_jpeg(data)
    return data


def _strip_png(data: bytes) -> bytes:
    out = [_PNG_SIGNATURE]
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            return data  # a chunk past the end: not ours to rewrite
        if kind in PNG_KEPT:
            out.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            return b"".join(out)
    return data  # no IEND: leave it as it is


def _strip_jpeg(data: bytes) -> bytes:
    out = [data[:2]]
    pos = 2
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            return data  # not a marker where one must be
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == _EOI:
            out.append(data[pos : pos + 2])
            return b"".join(out)
        if marker in _STANDALONE:
            out.append(data[pos : pos + 2])
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0] if pos + 4 <= len(data) else 0
        end = pos + 2 + length
        if length < 2 or end > len(data):
            return data
        if _kept(marker, data[pos + 4 : end]):
            out.append(data[pos:end])
        pos = end
        if marker == _SOS:  # the entropy-coded data follows, up to the next marker
            scan_end = _scan_end(data, pos)
            if scan_end is None:
                return data
            out.append(data[pos:scan_end])
            pos = scan_end
    return data  # no EOI: leave it as it is


def _kept(marker: int, payload: bytes) -> bool:
    if marker == _COM:
        return False
    if 0xE0 <= marker <= 0xEF:
        identifier = JPEG_KEPT.get(marker)
        return identifier is not None and payload.startswith(identifier)
    return True


def _scan_end(data: bytes, pos: int) -> int | None:
    """Where the entropy-coded data starting at ``pos`` ends: the next FF that starts a
    marker (not a stuffed FF 00, a restart marker or a fill byte)."""
    while True:
        j = data.find(b"\xff", pos)
        if j < 0 or j + 1 >= len(data):
            return None
        follower = data[j + 1]
        if follower == 0x00 or 0xD0 <= follower <= 0xD7:
            pos = j + 2
        elif follower == 0xFF:
            pos = j + 1
        else:
            return j
