"""What every vendor simulator shares: JSON answers, and looking at a received image.

- :func:`json_answer`: an HTTP 200 JSON answer with Chinese text as is (not ``\\u`` escaped),
  as the vendors send it;
- :func:`read_image`: format and size of a PNG/JPEG/BMP, or which way it is unreadable
  (:class:`Unreadable`); each vendor maps those to its own error codes.
"""

from __future__ import annotations

import enum
import io
import json
import warnings
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from PIL import Image

FORMATS: Final = ("PNG", "JPEG", "BMP")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def json_answer(body: Any) -> web.Response:
    return web.json_response(body, dumps=_dumps)


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


class Unreadable(enum.Enum):
    FORMAT = "not a PNG, JPEG or BMP"
    BOMB = "a decompression bomb"
    UNDECODABLE = "does not decode"


def read_image(data: bytes, *, load: bool = False) -> ImageInfo | Unreadable:
    """Format and size of ``data`` by content; ``load`` also decodes the pixels (a header
    alone is then not enough). Never raises for bad input."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.format not in FORMATS:
                    return Unreadable.FORMAT
                if load:
                    img.load()
                return ImageInfo(img.format, img.width, img.height)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            return Unreadable.BOMB
        except (OSError, ValueError, SyntaxError):
            return Unreadable.UNDECODABLE
