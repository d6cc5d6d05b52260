"""What every vendor adapter shares: reading answers, mapping HTTP statuses, hiding secrets.

- :func:`strip_secrets`: the copy of an answer's JSON that is stored (``raw``), without
  credential-like keys (credential values anywhere are masked by :mod:`worker.redaction`);
- :func:`http_status_kind` / :func:`http_status_error`: the outcome of a non-200 answer
  from a vendor that answers 200 even for its errors (anything else came from a proxy or
  gateway on the way);
- :func:`decode_json` / :func:`json_object`: the body as JSON, :class:`BadResponse`
  otherwise;
- :func:`text`, :func:`int_of`: lenient readers of the values vendors send;
- :func:`check_b64_size`: the vendor's base64 size limit, refused before calling (and billing);
  :func:`check_size` also refuses an empty image;
- :func:`key_of`: a single API key's value, or ConfigError naming its variable;
  :class:`RedactedBytes` / :class:`RedactedText`: a body or multipart value holding it,
  the same on the wire, but never shown by ``repr()`` of a ``VendorRequest``;
- :func:`credential_id`: a non-secret id of a single API key, for rate-limit buckets;
- :data:`NO_RESULT`: the marker code tables use for "looked, found nothing".
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final, Literal

from pydantic import SecretStr

from worker.errors import (
    BadResponse,
    ConfigError,
    InvalidImage,
    JobError,
    ProviderUnavailable,
    RateLimited,
    ServerError,
    VendorRejectedImage,
)
from worker.image_limits import ImageLimits, PreparedImage

NoResult = Literal["no_result"]
NO_RESULT: Final[NoResult] = "no_result"

# A key is dropped when its lower-cased name contains any of these: the union of what the
# adapters dropped before they shared this list ("key" covers key/appkey/app_key/apikey/...).
SECRETISH: Final = ("key", "secret", "token", "password", "authorization", "signature", "appcode")


def strip_secrets(value: Any) -> Any:
    """A copy of decoded JSON without credential-like keys (:data:`SECRETISH`). Credential
    values inside strings are the pipeline's to mask, for every provider at once
    (:mod:`worker.redaction`)."""
    if isinstance(value, dict):
        return {
            k: strip_secrets(v)
            for k, v in value.items()
            if not any(s in str(k).lower() for s in SECRETISH)
        }
    if isinstance(value, list):
        return [strip_secrets(v) for v in value]
    return value


def http_status_kind(status: int) -> type[JobError]:
    """The outcome of a non-200 status that no vendor layer explained."""
    if status >= 500:
        return ServerError
    if status == 429:
        return RateLimited
    if status == 413:  # the body is essentially the image
        return VendorRejectedImage
    if status in (401, 403, 404, 405):  # wrong endpoint or no access: stop calling
        return ProviderUnavailable
    return BadResponse  # a 4xx from something else on the way (a proxy): retry


def http_status_error(status: int, provider: str) -> JobError:
    """The error for a non-200 answer of a vendor that answers 200 even for errors."""
    return http_status_kind(status)(f"HTTP {status}", provider=provider, http_status=status)


def decode_json(body: bytes, provider: str, status: int, *, strict: bool = True) -> Any:
    """The body as JSON; BadResponse "answer is not JSON" otherwise.

    ``strict=False`` tolerates raw control characters (line breaks) inside strings.
    """
    try:
        return json.loads(body, strict=strict)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadResponse("answer is not JSON", provider=provider, http_status=status) from exc


def json_object(body: bytes, provider: str, status: int, *, strict: bool = True) -> dict[str, Any]:
    """The body as a JSON object; BadResponse for anything else."""
    decoded = decode_json(body, provider, status, strict=strict)
    if not isinstance(decoded, dict):
        raise BadResponse("answer is not a JSON object", provider=provider, http_status=status)
    return decoded


def text(value: Any) -> str | None:
    """A stripped string, or None for null and empty values (vendors send "" for "none")."""
    if value is None:
        return None
    out = str(value).strip()
    return out or None


def int_of(value: Any) -> int | None:
    """An int, or a string of one (signed); None for anything else, booleans included.

    (``isdecimal``, not ``isdigit``: "²" or "--1" would pass ``isdigit`` and fail ``int()``.)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().removeprefix("-").isdecimal():
        return int(value)
    return None


def check_b64_size(image: PreparedImage, limits: ImageLimits, provider: str) -> None:
    """InvalidImage when the base64 image is over the vendor's limit."""
    if len(image.b64) > limits.max_b64_bytes:
        raise InvalidImage(
            f"base64 image is {len(image.b64)} bytes, over {limits.max_b64_bytes}",
            provider=provider,
        )


def check_size(image: PreparedImage, limits: ImageLimits, provider: str) -> None:
    """Refuse before calling (and before billing) what the vendor would refuse."""
    if not image.b64:
        raise InvalidImage("image is empty", provider=provider)
    check_b64_size(image, limits, provider)


def key_of(key: SecretStr | None, provider: str) -> str:
    """The key's value, or ConfigError naming the environment variable to set."""
    value = secret_value(key)
    if not value:
        raise ConfigError(f"{provider}: VREC_{provider.upper()}__KEY must be set")
    return value


def secret_value(secret: SecretStr | None) -> str:
    """A credential's value, "" when unset."""
    return secret.get_secret_value() if secret is not None else ""


class RedactedBytes(bytes):
    """A request body holding the key: the same bytes, a ``repr`` that doesn't show them."""

    def __repr__(self) -> str:
        return f"<form body, {len(self)} bytes, key redacted>"


class RedactedText(str):
    """A multipart ``key`` value: the same text, a ``repr`` that doesn't show it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<redacted>'"


def credential_id(key: SecretStr | None) -> str:
    """A non-secret id of an API key: a short sha256 prefix (never any of the key itself)."""
    if key is None or not key.get_secret_value():
        return "unset"
    return "sha256:" + hashlib.sha256(key.get_secret_value().encode()).hexdigest()[:12]
