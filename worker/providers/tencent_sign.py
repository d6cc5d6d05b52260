"""Tencent Cloud API 3.0 request signing, "signature v3" (TC3-HMAC-SHA256).

Shared by the adapter (which signs) and the simulator (which verifies), so both sides
compute the very same canonical request. The steps, as Tencent's doc gives them::

    CanonicalRequest = Method \\n URI \\n Query \\n CanonicalHeaders \\n SignedHeaders \\n
                       hex(sha256(payload))
    StringToSign     = "TC3-HMAC-SHA256" \\n Timestamp \\n Date/service/tc3_request \\n
                       hex(sha256(CanonicalRequest))
    SigningKey       = HMAC("TC3" + SecretKey, Date) -> HMAC(., service) -> HMAC(., "tc3_request")
    Signature        = hex(HMAC(SigningKey, StringToSign))

``Date`` is the UTC date of ``Timestamp`` (never local time: a UTC+8 host would sign with
tomorrow's date between 00:00 and 08:00). The official SDK signs exactly two headers,
``content-type;host``; the server accepts more, so :func:`canonical_headers` takes any.

The secret key enters only :func:`signing_key`; nothing here returns, logs or formats it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

ALGORITHM = "TC3-HMAC-SHA256"
TERMINATOR = "tc3_request"
DEFAULT_SIGNED_HEADERS = ("content-type", "host")


@dataclass(frozen=True)
class Signed:
    """The intermediate values of one signature (none of them reveals the key)."""

    canonical_request: str
    string_to_sign: str
    signature: str
    authorization: str


@dataclass(frozen=True)
class Authorization:
    """A parsed ``Authorization`` header: what the verifier needs to recompute it."""

    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def utc_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_headers(headers: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """(CanonicalHeaders, SignedHeaders): names and values lower-cased and trimmed, sorted."""
    items = sorted((name.strip().lower(), value.strip().lower()) for name, value in headers)
    canonical = "".join(f"{name}:{value}\n" for name, value in items)
    return canonical, ";".join(name for name, _ in items)


def canonical_request(
    *,
    method: str,
    uri: str,
    query: str,
    headers: Sequence[tuple[str, str]],
    payload_hash: str,
) -> str:
    canonical, signed = canonical_headers(headers)
    return f"{method}\n{uri}\n{query}\n{canonical}\n{signed}\n{payload_hash}"


def string_to_sign(timestamp: int, date: str, service: str, canonical: str) -> str:
    scope = f"{date}/{service}/{TERMINATOR}"
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{sha256_hex(canonical.encode('utf-8'))}"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, service: str) -> bytes:
    return _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), service), TERMINATOR)


def signature(secret_key: str, date: str, service: str, to_sign: str) -> str:
    key = signing_key(secret_key, date, service)
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def sign(
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    timestamp: int,
    headers: Sequence[tuple[str, str]],
    payload: bytes,
    method: str = "POST",
    uri: str = "/",
    query: str = "",
) -> Signed:
    """Sign one request; ``headers`` are the signed ones (at least content-type and host)."""
    date = utc_date(timestamp)
    canonical = canonical_request(
        method=method, uri=uri, query=query, headers=headers, payload_hash=sha256_hex(payload)
    )
    to_sign = string_to_sign(timestamp, date, service, canonical)
    sig = signature(secret_key, date, service, to_sign)
    _, signed_names = canonical_headers(headers)
    authorization = (
        f"{ALGORITHM} Credential={secret_id}/{date}/{service}/{TERMINATOR}, "
        f"SignedHeaders={signed_names}, Signature={sig}"
    )
    return Signed(canonical, to_sign, sig, authorization)


_AUTH_RE = re.compile(
    rf"^{ALGORITHM}\s+Credential=(?P<id>[^/,\s]+)/(?P<date>\d{{4}}-\d{{2}}-\d{{2}})/"
    rf"(?P<service>[a-z0-9]+)/{TERMINATOR}\s*,\s*SignedHeaders=(?P<headers>[a-z0-9;.\-_]+)\s*,"
    r"\s*Signature=(?P<sig>[0-9a-f]{64})$"
)


def parse_authorization(value: str) -> Authorization | None:
    """The parts of a TC3 ``Authorization`` header, or None when it is not one."""
    match = _AUTH_RE.match(value.strip())
    if match is None:
        return None
    return Authorization(
        secret_id=match["id"],
        date=match["date"],
        service=match["service"],
        signed_headers=tuple(match["headers"].split(";")),
        signature=match["sig"],
    )
