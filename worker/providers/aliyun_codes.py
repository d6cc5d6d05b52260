"""Aliyun ocrCars answers -> outcomes: the doc's ret_code table, the API gateway's
X-Ca-Error-Message table, and the showapi platform's message words.

Sources: shared/vendor-docs/aliyun-ocrcars.txt (ret_code) and Aliyun API Gateway's client
error table (help.aliyun.com/document_detail/43906.htm).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from worker.errors import (
    BadResponse,
    JobError,
    ProviderUnavailable,
    RateLimited,
    ServerError,
    Transient,
    VendorRejectedImage,
)
from worker.providers.common import http_status_kind

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
UNAVAILABLE_WORDS: Final = ("次数", "余额", "欠费", "权限", "套餐", "授权", "过期", "停用")
RATE_WORDS: Final = ("频率", "频繁", "限流", "QPS")


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
