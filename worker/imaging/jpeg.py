"""JPEG structure read from the bytes, no decoding: the marker segments of the first
picture, that picture alone as a plain JPEG (for MPO files), and the check that a JPEG's
data does not end before its pixels do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_SOI, _EOI, _SOS, _APP2 = 0xD8, 0xD9, 0xDA, 0xE2
_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn stand alone
# The first marker after entropy-coded data: 0xFF followed by anything but a stuffed zero,
# a restart marker (part of the data) or another 0xFF (fill before a marker).
_MARKER_AFTER_DATA = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_MP_INDEX = b"MPF\x00"  # an APP2 segment naming a multi-picture file's other pictures
# Stuffed 0xFF bytes (all one-bits) put before the end marker by ends_before_its_pixels.
_FILLER = b"\xff\x00" * 64
_END = b"\xff\xd9"


def segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """``(marker, start, end)`` of each segment of the first picture, SOI to EOI.

    A scan's entropy-coded data belongs to its SOS segment. The walk stops, without an
    EOI, at the end of the data or at anything that is not a marker.
    """
    if not data.startswith(b"\xff\xd8"):
        return
    yield _SOI, 0, 2
    pos, size = 2, len(data)
    while pos + 1 < size and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == _EOI or marker in _NO_LENGTH:
            yield marker, pos, pos + 2
            if marker == _EOI:
                return
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > size:
            return
        if marker == _SOS:
            found = _MARKER_AFTER_DATA.search(data, end)
            end = found.start() if found else size
        yield marker, pos, end
        pos = end


def first_picture(data: bytes) -> bytes:
    """The first picture of a multi-picture JPEG (MPO) as a plain JPEG: its own segments,
    up to its EOI, without the MP index that makes decoders look for the others."""
    return b"".join(
        data[start:end]
        for marker, start, end in segments(data)
        if not (marker == _APP2 and data[start + 4 : start + 8] == _MP_INDEX)
    )


def with_filler(data: bytes) -> bytes | None:
    """``data`` with one-bits inserted before its final EOI, or None if it ends otherwise.

    libjpeg decodes a scan that ends early (a marker where data should be) as flat grey
    from there on, and Pillow does not report it. A complete scan is unaffected by what
    lies between its last byte and the EOI; a short one reads the filler instead, so its
    pixels change (unless the last block it held was mid-grey itself, a grey picture
    either way): decoded with and without the filler, a short scan differs.
    """
    if not data.endswith(_END):
        return None
    return data[:-2] + _FILLER + _END
