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

Both tables live in :mod:`worker.providers.aliyun_codes`.

Billing: ``showapi_fee_num`` when present (the doc's 失败响应, an empty ``car_no``, carries
``showapi_fee_num: 1``: "nothing found" is billed); otherwise ret_code 0 answers are billed
and error answers are not. Gateway refusals never reach the API and are not billed.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

from pydantic import SecretStr

from worker.config import FitMode, ProviderSettings
from worker.errors import (
    BadResponse,
    ConfigError,
    JobError,
    Outcome,
    ProviderUnavailable,
    RateLimited,
    ServerError,
)
from worker.image_limits import ImageLimits, PreparedImage
from worker.providers import aliyun_sign
from worker.providers.aliyun_codes import (
    OK,
    RATE_WORDS,
    RET_CODES,
    UNAVAILABLE_WORDS,
    classify_gateway,
    gateway_code,
)
from worker.providers.base import (
    PlateReading,
    VendorAnswer,
    VendorRequest,
    VendorResponse,
    check_options,
)
from worker.providers.common import (
    check_b64_size,
    decode_json,
    int_of,
    secret_value,
    strip_secrets,
    text,
)
from worker.providers.form import form_body

NAME: Final = "aliyun_plate"
CONTENT_TYPE: Final = "application/x-www-form-urlencoded; charset=UTF-8"  # as the doc's demo
# Set explicitly: it is signed, and aiohttp would otherwise send "*/*" (the doc warns).
ACCEPT: Final = "application/json"


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)  # "" (the failure example) and junk -> None
    except ValueError:
        return None
    return number if math.isfinite(number) else None  # "NaN" / "inf" are not readings


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


class AliyunPlateSettings(ProviderSettings):
    """``VREC_ALIYUN_PLATE__*``: an APPCODE, or an AppKey + AppSecret pair, and the endpoint."""

    base_url: str = "https://car6.market.alicloudapi.com/ocrCars"
    appcode: SecretStr | None = None
    app_key: SecretStr | None = None
    app_secret: SecretStr | None = None


class AliyunPlate:
    """The adapter: builds and signs requests, maps answers. No I/O (see ``base``)."""

    name: ClassVar[str] = NAME
    settings_model: ClassVar[type[ProviderSettings]] = AliyunPlateSettings
    limits: ClassVar[ImageLimits] = ImageLimits(
        formats=frozenset({"JPEG", "PNG", "BMP"}),
        # The doc gives no size limit, but has ret_code 50 "文件内容过大": 4,000,000 bytes
        # of base64 is an undocumented, conservative budget (Juhe's, for the same kind of API).
        max_b64_bytes=4_000_000,
        min_side=15,  # undocumented; conservative, as Juhe's documented floor
    )
    default_rate: ClassVar[float] = 5.0  # undocumented; the market's packages don't say
    # A plate's characters need every pixel allowed (no side limit today: only the byte
    # budget can shrink an image, the same way in either mode).
    fit: ClassVar[FitMode] = "exact"
    option_choices: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def __init__(
        self,
        settings: AliyunPlateSettings,
        *,
        clock: Callable[[], float] = time.time,  # tests sign with a fixed or skewed time
        nonce: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._nonce = nonce

    def credential_id(self) -> str:
        for kind, secret in (
            ("appcode", self.settings.appcode),
            ("appkey", self.settings.app_key),
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
        settings = self.settings
        self.require_credentials()
        if secret_value(settings.appcode):
            headers["Authorization"] = f"APPCODE {secret_value(settings.appcode)}"
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
        return VendorRequest("POST", settings.base_url, headers, body)

    def require_credentials(self) -> None:
        settings = self.settings
        pair = secret_value(settings.app_key) and secret_value(settings.app_secret)
        if not secret_value(settings.appcode) and not pair:
            raise ConfigError(
                f"{NAME}: set VREC_ALIYUN_PLATE__APPCODE, or both "
                "VREC_ALIYUN_PLATE__APP_KEY and VREC_ALIYUN_PLATE__APP_SECRET"
            )

    def parse_response(self, response: VendorResponse) -> VendorAnswer:
        status = response.status
        if status != 200:
            raise _gateway_error(response)
        decoded = decode_json(response.body, NAME, status)
        platform = int_of(decoded.get("showapi_res_code")) if isinstance(decoded, dict) else None
        if platform is None:
            raise BadResponse("answer has no showapi_res_code", provider=NAME, http_status=200)
        raw = strip_secrets(decoded)
        request_id = text(decoded.get("showapi_res_id"))
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


def _platform_error(code: int, decoded: Mapping[str, Any], rid: str | None, raw: Any) -> JobError:
    message = text(decoded.get("showapi_res_error")) or f"showapi_res_code {code}"
    kind: type[JobError] = ServerError
    if any(word in message for word in UNAVAILABLE_WORDS):
        kind = ProviderUnavailable
    elif any(word.lower() in message.lower() for word in RATE_WORDS):
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
