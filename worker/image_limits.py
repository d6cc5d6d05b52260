"""What a vendor accepts (:class:`ImageLimits`) and the image made to fit it
(:class:`PreparedImage`): the values :mod:`worker.imaging` and the provider adapters
exchange, kept here so that neither package imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageLimits:
    """What a vendor accepts, from its doc. imaging.py does the mechanics.

    ``formats`` are Pillow format names sent as they are; anything else allowed in is
    converted to JPEG (or PNG where alpha matters). Byte budgets count base64 text.
    """

    formats: frozenset[str]
    max_b64_bytes: int
    min_side: int = 1
    max_side: int | None = None
    max_pixels: int | None = None
    recommended_min: tuple[int, int] | None = None  # (short, long) side; below it: a warning


@dataclass(frozen=True)
class PreparedImage:
    """An image ready for one provider: original bytes if they fit, else re-encoded."""

    data: bytes  # the encoded file (JPEG/PNG/BMP)
    b64: bytes  # base64 of ``data``, no ``data:`` header
    format: str  # Pillow format name of ``data``
    width: int
    height: int
    transformed: bool  # False when ``data`` is the submitted file, untouched
    warnings: tuple[str, ...] = ()

    @property
    def mime(self) -> str:
        return {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp"}.get(
            self.format, "application/octet-stream"
        )
