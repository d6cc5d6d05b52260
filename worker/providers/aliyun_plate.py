"""Aliyun API market ``ocrCars`` (car6.market.alicloudapi.com): plate number, confidence, corners.

Request: ``POST /ocrCars``, ``application/x-www-form-urlencoded; charset=UTF-8``, one form
field ``img_base64`` (no ``data:`` header). Auth is either ``Authorization: APPCODE <code>``
or the API gateway's AppKey/AppSecret digest signature (:mod:`worker.providers.aliyun_sign`);
APPCODE wins when both are configured.

Answers come from two layers, mapped to one outcome each:

* the **gateway** (auth, quotas, flow control) answers HTTP 4xx/5xx with an
  ``X-Ca-Error-Message`` header and no JSON: :data:`GATEWAY_ERRORS`;
* the **API** answers HTTP 200 with ``showapi_res_code`` (platform, 0 = ok) and
  ``showapi_res_body.ret_code`` (the doc's table, :data:`RET_CODES`). An HTTP 200 carrying
  an error is an error.

Billing: ``showapi_fee_num`` when present (the doc's 失败响应, an empty ``car_no``, carries
``showapi_fee_num: 1``: "nothing found" is billed); otherwise ret_code 0 answers are billed
and error answers are not. Gateway refusals never reach the API and are not billed.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, Literal
from urllib.parse import urlsplit

from worker.config import AliyunPlateSettings, ProviderSettings
from worker.errors import (
    BadResponse,
    ConfigError,
    JobError,
    Outcome,
    ProviderUnavailable,
    RateLimited,
    ServerError,
    Transient,
    VendorRejectedImage,
)
from worker.providers import aliyun_sign
from worker.providers.base import (
    ImageLimits,
    PlateReading,
    PreparedImage,
    VendorAnswer,
    VendorRequest,
    VendorResponse,
    check_options,
)
from worker.providers.common import (
    check_b64_size,
    decode_json,
    http_status_kind,
    int_of,
    strip_secrets,
    text,
)
from worker.providers.form import form_body

NAME: Final = "aliyun_plate"
CONTENT_TYPE: Final = "application/x-www-form-urlencoded; charset=UTF-8"  # as the doc's demo
# Set explicitly: it is signed, and aiohttp would otherwise send "*/*" (the doc warns).
ACCEPT: Final = "application/json"

Ok = Literal["ok"]
OK: Final[Ok] = "ok"

# The doc's ret_code table -> outcome. Anything else: ServerError (transient), code kept.
RET_CODES: Final[Mapping[int, type[JobError] | Ok]] = {
    0: OK,  # 成功 (an empty car_no is no_result)
    # 文件下载失败: only img_url is downloaded and we send base64, so it is vendor-side.
    10: Transient,
    20: VendorRejectedImage,  # 图片解析失败: the same bytes will not parse next time
    # OCR识别失败: the engine failed on a decodable image. Read as a vendor fault rather
    # than the image's (no_result covers "looked, found nothing"); the attempt cap bounds it.
    30: ServerError,
    # 参数错误: we send exactly the documented field, so every call would fail alike:
    # stop calling until the request (our code) is fixed.
    40: ProviderUnavailable,
    50: VendorRejectedImage,  # 文件内容过大
    60: VendorRejectedImage,  # 文件格式错误
    70: Transient,  # 操作失败,请勿重复提交: try again later
    80: ServerError,  # 服务超时 (the vendor's own, not our client timeout)
    90: ServerError,  # 未知错误
}

# Gateway X-Ca-Error-Message (text before any "`" or ",") -> outcome. From Aliyun API
# Gateway's client error table (help.aliyun.com/document_detail/43906.htm). "Throttled by
# <X> Flow Control" (USER, APP, API, DOMAIN, GROUP) is matched by prefix.
GATEWAY_ERRORS: Final[Mapping[str, type[JobError]]] = {
    # Credentials and account: stop calling (circuit open), keep the jobs.
    "Missing AppCode": ProviderUnavailable,
    "Empty AppCode": ProviderUnavailable,
    "Invalid AppCode": ProviderUnavailable,  # the gateway echoes the code: never kept
    "Unauthorized": ProviderUnavailable,  # the app is not authorised for this API
    "Invalid AppKey": ProviderUnavailable,
    "Invalid AppSecret": ProviderUnavailable,
    "Empty Signature": ProviderUnavailable,
    "Invalid Signature": ProviderUnavailable,  # our signer or secret is wrong
    "Invalid Signature Method": ProviderUnavailable,
    # Our clock is off by > 15 min, or nonces repeat (ours are uuid4): retrying the same
    # way cannot help until someone fixes the host.
    "Invalid Timestamp": ProviderUnavailable,
    "Timestamp Expired": ProviderUnavailable,
    "Nonce Used": ProviderUnavailable,
    "Quota Exhausted": ProviderUnavailable,
    "Quota Expired": ProviderUnavailable,
    "Expiry of Authorization": ProviderUnavailable,
    "User Arrears": ProviderUnavailable,
    # Our request does not fit the API definition: every call would fail alike.
    "Invalid Url": ProviderUnavailable,
    "Invalid Domain": ProviderUnavailable,
    "Invalid HttpMethod": ProviderUnavailable,
    "Invalid Param Location": ProviderUnavailable,
    "Unsupported Multipart": ProviderUnavailable,
    "Empty Request Body": ProviderUnavailable,
    "Invalid Request Body": ProviderUnavailable,
    "Invalid Content-MD5": ProviderUnavailable,
    "Api Not Found": ProviderUnavailable,
    "Request body too Large": VendorRejectedImage,  # the body is essentially the image
    # Gateway-side failures (5xx).
    "Internal Error": ServerError,
    "Failed To Call Backend Service": ServerError,
    "Service Unavailable": ServerError,
    "Async Service": ServerError,
    "Backend Service Timeout": ServerError,
}
THROTTLED_PREFIX: Final = "throttled by "

# showapi_res_code != 0 is the showapi platform failing before the OCR ran. The vendor doc
# lists no codes, so the message decides: quota/permission words open the circuit,
# frequency words slow down, anything else is retried.
_UNAVAILABLE_WORDS: Final = ("次数", "余额", "欠费", "权限", "套餐", "授权", "过期", "停用")
_RATE_WORDS: Final = ("频率", "频繁", "限流", "QPS")


def gateway_code(message: str) -> str:
    """The stable part of an X-Ca-Error-Message: ``Invalid AppCode `abc``` -> ``Invalid AppCode``.

    The gateway appends echoes (the AppCode itself, the server StringToSign) that are
    per-request and may be secret; they are cut off before anything is stored.
    """
    return message.split("`", 1)[0].split(",", 1)[0].strip()[:100]


def classify_gateway(status: int, code: str) -> type[JobError]:
    if code.lower().startswith(THROTTLED_PREFIX):
        return RateLimited
    for known, kind in GATEWAY_ERRORS.items():
        if known.lower() == code.lower():
            return kind
    return _status_error(status, gateway=bool(code))


def _status_error(status: int, *, gateway: bool) -> type[JobError]:
    """:func:`~worker.providers.common.http_status_kind`, except that any other 4xx the
    gateway itself answered (it named an error) refuses our request: stop calling."""
    kind = http_status_kind(status)
    if gateway and kind is BadResponse and 400 <= status < 500:
        return ProviderUnavailable
    return kind


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)  # "" (the failure example) and junk -> None
    except ValueError:
        return None


def quad_of(points: Any) -> list[dict[str, int]] | None:
    """``range`` as four ``{x, y}`` corners (ints), or None when absent or malformed."""
    if not isinstance(points, list) or len(points) != 4:
        return None
    quad = []
    for point in points:
        x = _float(point.get("x")) if isinstance(point, dict) else None
        y = _float(point.get("y")) if isinstance(point, dict) else None
        if x is None or y is None:
            return None
        quad.append({"x": round(x), "y": round(y)})
    return quad


def plate_of(car_no: Any) -> str | None:
    """The plate without whitespace: the doc's example reads "粤 BP57E7" where every other
    vendor writes 粤BP57E7; one spelling keeps SQL searches simple. Raw JSON keeps the
    vendor's own."""
    if not isinstance(car_no, str):
        return None
    return "".join(car_no.split()) or None


class AliyunPlate:
    """The adapter: builds and signs requests, maps answers. No I/O (see ``base``)."""

    name: ClassVar[str] = NAME
    limits: ClassVar[ImageLimits] = ImageLimits(
        formats=frozenset({"JPEG", "PNG", "BMP"}),
        # The doc gives no size limit, but has ret_code 50 "文件内容过大": 4,000,000 bytes
        # of base64 is an undocumented, conservative budget (Juhe's, for the same kind of API).
        max_b64_bytes=4_000_000,
        min_side=15,  # undocumented; conservative, as Juhe's documented floor
    )
    default_rate: ClassVar[float] = 5.0  # undocumented; the market's packages don't say
    option_choices: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    settings: ProviderSettings

    def __init__(
        self,
        settings: AliyunPlateSettings,
        *,
        clock: Callable[[], float] = time.time,  # tests sign with a fixed or skewed time
        nonce: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.settings = settings
        self._settings = settings
        self._clock = clock
        self._nonce = nonce

    def credential_id(self) -> str:
        for kind, secret in (
            ("appcode", self._settings.appcode),
            ("appkey", self._settings.app_key),
        ):
            if secret is not None:
                digest = hashlib.sha256(secret.get_secret_value().encode()).hexdigest()
                return f"{kind}~{digest[:10]}"
        return "unset"

    def build_request(self, image: PreparedImage, options: Mapping[str, str]) -> VendorRequest:
        check_options(self, options)
        check_b64_size(image, self.limits, NAME)
        body = form_body({}, {"img_base64": image.b64})
        headers = {"Accept": ACCEPT, "Content-Type": CONTENT_TYPE}
        settings = self._settings
        if settings.appcode is not None:
            headers["Authorization"] = f"APPCODE {settings.appcode.get_secret_value()}"
        elif settings.app_key is not None and settings.app_secret is not None:
            url = urlsplit(settings.base_url)
            signed = aliyun_sign.sign(
                app_key=settings.app_key.get_secret_value(),
                app_secret=settings.app_secret.get_secret_value(),
                method="POST",
                path=url.path or "/",
                query=url.query,
                accept=ACCEPT,
                content_type=CONTENT_TYPE,
                form={"img_base64": image.b64},  # raw base64: the signer never decodes it
                timestamp_ms=int(self._clock() * 1000),
                nonce=self._nonce(),
            )
            headers.update(signed.headers)
        else:
            raise ConfigError(
                f"{NAME}: set VREC_ALIYUN_PLATE__APPCODE, or both "
                "VREC_ALIYUN_PLATE__APP_KEY and VREC_ALIYUN_PLATE__APP_SECRET"
            )
        return VendorRequest("POST", settings.base_url, headers, body)

    def parse_response(self, response: VendorResponse) -> VendorAnswer:
        status = response.status
        if status != 200:
            raise _gateway_error(response)
        decoded = decode_json(response.body, NAME, status)
        if not isinstance(decoded, dict) or int_of(decoded.get("showapi_res_code")) is None:
            raise BadResponse("answer has no showapi_res_code", provider=NAME, http_status=200)
        raw = strip_secrets(decoded)  # defensive: the API echoes none
        request_id = text(decoded.get("showapi_res_id"))
        platform = int_of(decoded.get("showapi_res_code"))
        if platform != 0:
            raise _platform_error(platform, decoded, request_id, raw)
        body = decoded.get("showapi_res_body")
        ret_code = int_of(body.get("ret_code")) if isinstance(body, dict) else None
        if not isinstance(body, dict) or ret_code is None:
            raise BadResponse("answer has no ret_code", provider=NAME, http_status=200)
        fee = int_of(decoded.get("showapi_fee_num"))
        billed = fee > 0 if fee is not None else ret_code == 0
        kind = RET_CODES.get(ret_code, ServerError)
        if kind != OK:
            message = text(body.get("error_msg")) or f"ret_code {ret_code}"
            raise kind(
                message[:300],
                provider=NAME,
                vendor_code=str(ret_code),
                http_status=200,
                request_id=request_id,
                billed=billed,
                raw=raw,
            )
        plate = plate_of(body.get("car_no"))
        if plate is None:  # looked, found no plate (the doc's 失败响应)
            return VendorAnswer(
                Outcome.NO_RESULT, raw, vendor_code="0", request_id=request_id, billed=billed
            )
        reading = PlateReading(
            position=0,
            plate_no=plate,
            confidence=_float(body.get("confidence_level")),
            quad=quad_of(body.get("range")),
        )
        return VendorAnswer(
            Outcome.SUCCEEDED, raw, [reading], vendor_code="0", request_id=request_id, billed=billed
        )


def _gateway_error(response: VendorResponse) -> JobError:
    status = response.status
    code = gateway_code(response.headers.get("X-Ca-Error-Message", ""))
    request_id = text(response.headers.get("X-Ca-Request-Id"))
    kind = classify_gateway(status, code)
    raw = {"status": status, "x_ca_error_message": code or None, "x_ca_request_id": request_id}
    return kind(
        f"HTTP {status}" + (f": {code}" if code else ""),
        provider=NAME,
        vendor_code=code or None,
        http_status=status,
        request_id=request_id,
        raw=raw,
    )


def _platform_error(
    code: int | None, decoded: Mapping[str, Any], rid: str | None, raw: Any
) -> JobError:
    message = text(decoded.get("showapi_res_error")) or f"showapi_res_code {code}"
    kind: type[JobError] = ServerError
    if any(word in message for word in _UNAVAILABLE_WORDS):
        kind = ProviderUnavailable
    elif any(word.lower() in message.lower() for word in _RATE_WORDS):
        kind = RateLimited
    fee = int_of(decoded.get("showapi_fee_num"))
    return kind(
        message[:300],
        provider=NAME,
        vendor_code=f"showapi:{code}",
        http_status=200,
        request_id=rid,
        billed=bool(fee and fee > 0),
        raw=raw,
    )
