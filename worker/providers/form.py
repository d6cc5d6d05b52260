"""Fast application/x-www-form-urlencoded bodies for multi-megabyte base64 fields.

aiohttp's FormData runs urllib's urlencode, which escapes byte by byte: about 120 ms for
a 4 MB field. Base64 text needs only ``+ / =`` escaped, so three ``bytes.replace`` calls
give the same bytes in about a tenth of the time. Other fields go through quote_plus.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote_plus

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def quote_b64(value: bytes) -> bytes:
    """Form-encode base64 text; identical to ``quote_plus`` on the base64 alphabet."""
    return value.replace(b"+", b"%2B").replace(b"/", b"%2F").replace(b"=", b"%3D")


def form_body(fields: Mapping[str, str], b64_fields: Mapping[str, bytes] | None = None) -> bytes:
    """``fields`` quoted normally, then ``b64_fields`` (base64 text) quoted the fast way."""
    parts = [f"{quote_plus(k)}={quote_plus(v)}".encode() for k, v in fields.items()]
    parts += [quote_plus(k).encode() + b"=" + quote_b64(v) for k, v in (b64_fields or {}).items()]
    return b"&".join(parts)
