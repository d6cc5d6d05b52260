"""What Juhe's APIs (carDetect, verify_carlicense) share: envelope, system codes, billing.

Every Juhe answer is HTTP 200 with ``{"error_code": int, "reason": str, "result": ...}``;
``error_code`` 0 is success, anything else an error whose ``result`` is usually null.
Codes starting with 1 (``10001``-``10021``) are Juhe's system codes, common to every API
(:data:`SYSTEM_ERRORS`); each API adds its own service codes (``2xxxxx``), merged on top
by the adapter. A code in neither table is treated as :class:`~worker.errors.Transient`:
retried up to the attempt cap, with the code kept for the failures view.

Billing: Juhe charges a call when it answers ``error_code`` 0 (also when that success
holds no candidates or no plate); every non-zero code, including "nothing recognised"
(237102), is free: ``Envelope.billed``, used by :func:`answer` for every outcome.

The key travels in the request body (the docs leave no other place for it), so adapters
wrap bodies in :class:`~worker.providers.common.RedactedBytes` / ``RedactedText``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeVar

from worker.errors import (
    BadResponse,
    JobError,
    Outcome,
    ProviderUnavailable,
    RateLimited,
    ServerError,
    Transient,
)
from worker.image_limits import ImageLimits, PreparedImage
from worker.providers.base import Reading, VendorAnswer, VendorResponse
from worker.providers.common import (
    NO_RESULT,
    NoResult,
    http_status_error,
    int_of,
    json_object,
    strip_secrets,
    text,
)
from worker.providers.keyed_form import KeyedFormAdapter, KeySettings

Kind = type[JobError] | NoResult

# Juhe's system-level codes (both docs list the same table) -> one outcome each.
SYSTEM_ERRORS: Final[Mapping[int, Kind]] = {
    10001: ProviderUnavailable,  # 错误的请求KEY: wrong or missing key
    10002: ProviderUnavailable,  # 该KEY无请求权限: key not subscribed to this API
    10003: ProviderUnavailable,  # KEY过期
    10004: ProviderUnavailable,  # 错误的OPENID
    10005: ProviderUnavailable,  # 应用未审核超时，请提交认证: account not verified
    10007: ProviderUnavailable,  # 未知的请求源: our request is not one Juhe accepts
    10008: ProviderUnavailable,  # 被禁止的IP: this host is banned; every call would fail
    10009: ProviderUnavailable,  # 被禁止的KEY
    10011: RateLimited,  # 当前IP请求超过限制: the frequency limit (the throttle answer)
    # 请求超过次数限制: the key's count of calls (次数) is spent, a quota: retrying bills
    # nothing and reads nothing until the package is renewed, so the circuit opens.
    10012: ProviderUnavailable,
    # 测试KEY超过请求限制: a test key's allowance is spent; waiting won't help, a paid key will.
    10013: ProviderUnavailable,
    10014: ServerError,  # 系统内部异常 (recognition is not a payment: safe to retry)
    10020: ServerError,  # 接口维护: maintenance ends; retry with backoff
    10021: ProviderUnavailable,  # 接口停用: API discontinued
}

# Images are sent as base64 text; both APIs' answers are parsed by the same envelope.
FORMATS: Final = frozenset({"JPEG", "PNG", "BMP"})
CAR_LIMITS: Final = ImageLimits(
    formats=FORMATS,  # "支持jpg/png/bmp格式"
    max_b64_bytes=4_000_000,  # "编码后大小不超过4M", read as 4,000,000 bytes of base64
    min_side=15,  # "最短边至少15px"
    max_side=4096,  # "最长边最大4096px"
)
# Undocumented, conservative: Juhe doesn't publish a per-second limit for these APIs.
DEFAULT_RATE: Final = 5.0
_EXTENSIONS: Final = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp"}


def filename(image: PreparedImage) -> str:
    """An upload filename whose extension matches the content (Java backends look at it)."""
    return f"image.{_EXTENSIONS.get(image.format, 'bin')}"


@dataclass(frozen=True)
class Envelope:
    """A decoded Juhe answer: its code, reason, result and the JSON with secrets stripped."""

    code: int
    reason: str
    result: Any
    raw: Any
    request_id: str | None

    @property
    def billed(self) -> bool:
        return self.code == 0

    def error(self, kind: type[JobError], message: str, provider: str) -> JobError:
        """``kind`` for this answer, carrying its code, request id, billing and raw JSON."""
        return kind(
            message,
            provider=provider,
            vendor_code=str(self.code),
            http_status=200,
            request_id=self.request_id,
            billed=self.billed,
            raw=self.raw,
        )


def parse_envelope(status: int, body: bytes, provider: str) -> Envelope:
    """Check the HTTP status and the envelope's shape; raise for anything else."""
    if status != 200:  # Juhe answers 200 even for errors: a proxy or gateway's
        raise http_status_error(status, provider)
    # strict=False: tolerate raw line breaks inside strings; the carDetect doc's own
    # example has them in a 百科 description, and refusing a paid answer for it helps no one.
    decoded = json_object(body, provider, status, strict=False)
    code = int_of(decoded.get("error_code"))
    if code is None:  # not Juhe's envelope: a proxy page, or a changed API
        raise BadResponse("answer has no error_code", provider=provider, http_status=status)
    raw = strip_secrets(decoded)
    result = raw.get("result")  # readings come from the stripped copy too
    order_id = text(result.get("orderid")) if isinstance(result, dict) else None
    return Envelope(
        code=code,
        reason=text(raw.get("reason")) or "",
        result=result,
        raw=raw,
        request_id=order_id,
    )


def result_list(result: Any, key: str) -> tuple[dict[str, Any], list[Any]]:
    """A success's ``result`` object and its list under ``key``; a missing or null result or
    list is empty. Raises ValueError when either has the wrong shape."""
    if result is None:
        return {}, []
    if not isinstance(result, dict):
        raise ValueError("result is not an object")
    entries = result.get(key)
    if entries is None:
        return result, []
    if not isinstance(entries, list):
        raise ValueError(f"result.{key} is not a list")
    return result, entries


def classify(code: int, service: Mapping[int, Kind]) -> Kind:
    """The outcome of a non-zero code: the API's own table, then the system table."""
    return service.get(code) or SYSTEM_ERRORS.get(code) or Transient


def answer(
    response: VendorResponse,
    *,
    provider: str,
    errors: Mapping[int, Kind],
    readings_of: Callable[[Any], Sequence[Reading]],
) -> VendorAnswer:
    """The one outcome of a Juhe answer; ``readings_of(result)`` reads a success.

    ``readings_of`` raises ValueError for a ``result`` of the wrong shape and returns no
    readings when the vendor found nothing, which is ``no_result`` (billed: code 0).
    """
    envelope = parse_envelope(response.status, response.body, provider)
    if envelope.code != 0:
        kind = classify(envelope.code, errors)
        if kind != NO_RESULT:
            reason = envelope.reason or f"error_code {envelope.code}"
            raise envelope.error(kind, reason[:300], provider)
        return VendorAnswer(
            Outcome.NO_RESULT,
            envelope.raw,
            vendor_code=str(envelope.code),
            request_id=envelope.request_id,
            billed=envelope.billed,
        )
    try:
        readings = list(readings_of(envelope.result))
    except ValueError as exc:  # a success we can't read (billed: Juhe counted it)
        raise envelope.error(BadResponse, str(exc), provider) from exc
    return VendorAnswer(
        Outcome.SUCCEEDED if readings else Outcome.NO_RESULT,
        envelope.raw,
        readings,
        request_id=envelope.request_id,
        billed=envelope.billed,
    )


S = TypeVar("S", bound=KeySettings)


class JuheAdapter(KeyedFormAdapter[S]):
    """A Juhe API: a one-key form request and Juhe's envelope; subclasses name the service
    codes (``errors``) and read a success's ``result`` (``read``)."""

    limits: ClassVar[ImageLimits] = CAR_LIMITS
    default_rate: ClassVar[float] = DEFAULT_RATE  # undocumented; conservative
    errors: ClassVar[Mapping[int, Kind]]

    def read(self, result: Any) -> Sequence[Reading]:
        """The readings of a success's ``result`` (ValueError for a wrong shape)."""
        raise NotImplementedError

    def parse_response(self, response: VendorResponse) -> VendorAnswer:
        return answer(
            response,
            provider=self.name,
            errors=self.errors,
            readings_of=self.read,
        )
