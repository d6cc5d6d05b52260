"""Tianapi ``licenseplate`` (车牌识别): plate numbers and colours, several per image.

Request: ``POST {base_url}`` (default ``https://apis.tianapi.com/licenseplate/index``),
``application/x-www-form-urlencoded`` with ``key`` and ``img`` (base64, no ``data:``
header). The doc also allows GET and ``imgurl``; vrec always POSTs base64, so the key
never sits in a URL that proxies or logs could keep.

Answer: ``{"code": 200, "msg": "success", "result": ...}``. Every answer the doc shows is
HTTP 200; errors carry their own ``code``, mapped by :data:`ERRORS`. The doc's field
table gives one plate as ``result{color, number}``, yet the API "支持识别图像中的多张车牌
信息", so :func:`plates_of` accepts every shape a plate list can plausibly take:

- ``result: {"color", "number"}``              one plate (the doc's field table);
- ``result: [{"color", "number"}, ...]``       a bare list;
- ``result: {"list": [{...}, ...]}``           Tianapi's new-domain wrapper for lists;
- top-level ``newslist: [{...}, ...]``         the old domain's (api.tianapi.com) envelope.

Billing: "成功调用,code=>200并产生计费" - every code 200 is billed, even one whose result
holds no plate; error codes are not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from worker import errors
from worker.config import FitMode, ProviderSettings
from worker.image_limits import ImageLimits
from worker.providers import common
from worker.providers.base import PlateReading, VendorAnswer, VendorResponse
from worker.providers.keyed_form import KeyedFormAdapter, KeySettings

NAME: Final = "tianapi_plate"
OK: Final = 200
COLORS: Final = ("black", "blue", "green", "yellow", "white")  # the doc's list

# The doc's whole code table -> one outcome each ("错误码1开头的是系统级错误,2开头的是用户级错误").
ERRORS: Final[Mapping[int, type[errors.JobError] | common.NoResult]] = {
    100: errors.ServerError,  # 内部服务器错误
    110: errors.ProviderUnavailable,  # 当前API已下线: discontinued, retrying cannot help
    120: errors.ServerError,  # API暂时维护中: maintenance is temporary
    130: errors.RateLimited,  # API调用频率超限 (per-second limit)
    140: errors.ProviderUnavailable,  # API没有调用权限 (disabled in the console)
    150: errors.ProviderUnavailable,  # API可用次数不足 (out of paid calls)
    160: errors.ProviderUnavailable,  # 账号未申请该API
    170: errors.ProviderUnavailable,  # Referer请求来源受限
    180: errors.ProviderUnavailable,  # IP请求来源受限 (our egress IP is not whitelisted)
    190: errors.ProviderUnavailable,  # 当前key不可用 ("此状态无法恢复")
    230: errors.ProviderUnavailable,  # key错误或为空
    240: errors.ProviderUnavailable,  # 缺少key参数
    # 数据返回为空: for an OCR call this is the vendor looking at a valid image and finding
    # no plate (the simulator answers it for "empty"). Retrying the same bytes gives the
    # same answer, so it is terminal, and not billed (only code 200 is).
    250: common.NO_RESULT,
    # 参数值不得为空 / 缺少必要的参数: build_request never sends an empty or missing key or
    # img (it refuses both first), so these mean our request encoding is broken: every
    # call would fail alike. Open the circuit and keep the jobs, rather than failing each
    # image as invalid.
    260: errors.ProviderUnavailable,
    280: errors.ProviderUnavailable,
    # 参数值不符合要求: the key has its own codes (230/240), so the value refused is img:
    # base64 or image the vendor can't decode. Terminal for these bytes.
    270: errors.VendorRejectedImage,
    290: errors.VendorRejectedImage,  # 超过最大输入限制: the image is over the vendor's limit
}


def classify(code: int) -> type[errors.JobError] | common.NoResult:
    """The outcome of a Tianapi code other than 200; unknown codes are errors.Transient (kept)."""
    return ERRORS.get(code, errors.Transient)


def _entries(decoded: Mapping[str, Any]) -> list[Any]:
    """The plate objects of a code-200 answer, in the vendor's order (shapes: see module)."""
    if "result" in decoded:
        result = decoded["result"]
    elif "newslist" in decoded:
        result = decoded["newslist"]
    else:
        raise errors.BadResponse("code 200 without result", provider=NAME, http_status=200)
    if result is None:
        return []
    if isinstance(result, list):
        return result
    if isinstance(result, dict):
        if "list" in result:
            inner = result["list"]
            if inner is None:
                return []
            if isinstance(inner, list):
                return inner
        elif "number" in result or "color" in result:
            return [result]
        elif not result:  # {}: the doc's "result object {}" with nothing in it
            return []
    raise errors.BadResponse(
        "result is neither a plate nor a list of plates", provider=NAME, http_status=200
    )


def plates_of(decoded: Mapping[str, Any]) -> list[PlateReading]:
    """One reading per plate with a number; ``position`` is the index in the vendor's list."""
    readings = []
    for position, entry in enumerate(_entries(decoded)):
        if not isinstance(entry, dict):
            raise errors.BadResponse(
                "a plate entry is not an object", provider=NAME, http_status=200
            )
        number = common.text(entry.get("number"))
        if number is None:  # an entry without a number reads nothing
            continue
        color = common.text(entry.get("color"))
        readings.append(
            PlateReading(position, plate_no=number, color=color.lower() if color else None)
        )
    return readings


class TianapiPlateSettings(KeySettings):
    """``VREC_TIANAPI_PLATE__*``: the API key and where licenseplate lives."""

    base_url: str = "https://apis.tianapi.com/licenseplate/index"


class TianapiPlate(KeyedFormAdapter[TianapiPlateSettings]):
    """The adapter: builds the form, maps answers. No I/O (see :mod:`worker.providers.base`)."""

    name: ClassVar[str] = NAME
    settings_model: ClassVar[type[ProviderSettings]] = TianapiPlateSettings
    image_field: ClassVar[str] = "img"
    limits: ClassVar[ImageLimits] = ImageLimits(
        formats=frozenset({"JPEG", "PNG", "BMP"}),  # imgurl's "支持jpg/png/bmp格式"
        max_b64_bytes=3_000_000,  # "图片大小不超过3M", read as 3,000,000 bytes of base64
        # The doc gives no minimum. 15 px is the floor Juhe documents for its recogniser;
        # below it no plate's characters can be resolved, so calling would only bill.
        min_side=15,
    )
    # Tianapi caps requests per second per account (code 130) without publishing the
    # figure ("可在控制台-接口管理中查询"); 5/s is a conservative default, set
    # VREC_TIANAPI_PLATE__RATE to the console's value.
    default_rate: ClassVar[float] = 5.0
    # A plate's characters need every pixel allowed (no side limit today: only the byte
    # budget can shrink an image, the same way in either mode).
    fit: ClassVar[FitMode] = "exact"

    def parse_response(self, response: VendorResponse) -> VendorAnswer:
        status = response.status
        if status != 200:  # Tianapi answers 200 even for errors: a proxy or gateway's
            raise common.http_status_error(status, NAME)
        decoded = common.json_object(response.body, NAME, status)
        code = common.int_of(decoded.get("code"))
        if code is None:
            raise errors.BadResponse(
                "answer has no numeric code", provider=NAME, http_status=status
            )
        raw = common.strip_secrets(decoded)
        if code != OK:
            return self._error(code, raw)
        readings = plates_of(decoded)
        if not readings:  # looked and found no plate; code 200 is billed all the same
            return VendorAnswer(errors.Outcome.NO_RESULT, raw, vendor_code=str(OK), billed=True)
        return VendorAnswer(errors.Outcome.SUCCEEDED, raw, list(readings), str(OK), billed=True)

    def _error(self, code: int, raw: Any) -> VendorAnswer:
        kind = classify(code)
        if kind == common.NO_RESULT:
            return VendorAnswer(errors.Outcome.NO_RESULT, raw, vendor_code=str(code))
        message = (common.text(raw.get("msg")) or f"code {code}")[:300]
        raise kind(
            message, provider=NAME, vendor_code=str(code), http_status=200, billed=False, raw=raw
        )
