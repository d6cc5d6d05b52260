"""Simulator of Tencent Cloud OCR ``VehicleLicenseOCR`` (2018-11-19) on ``POST /``.

Checks, in the order the real gateway reports them: ``X-TC-Action`` / ``X-TC-Version`` /
``X-TC-Region``, ``X-TC-Timestamp`` (5 minutes of skew at most), the TC3-HMAC-SHA256
``Authorization`` against ``VREC_TENCENT_VEHICLE_LICENSE__SECRET_ID/__SECRET_KEY`` (no
credentials configured: every call fails auth), then the JSON body, the image, and the
image's directive. Every answer is HTTP 200 in Tencent's ``{"Response": ...}`` envelope.
``ImageUrl`` can't be fetched here and answers ``FailedOperation.DownLoadError``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Callable
from typing import Any, ClassVar, Final

from aiohttp import web

from worker.config import ProviderSettings
from worker.providers import tencent_sign
from worker.providers.tencent_vehicle_license import TencentVehicleLicenseSettings
from worker.simulator import faults
from worker.simulator.common import Unreadable, json_answer, read_image
from worker.simulator.directives import Directive, read_directive
from worker.simulator.synth import Synth, request_id

ACTION: Final = "VehicleLicenseOCR"
VERSION: Final = "2018-11-19"
SERVICE: Final = "ocr"
REGIONS: Final = ("ap-beijing", "ap-guangzhou", "ap-hongkong", "ap-shanghai")
MAX_B64: Final = 7_000_000
MAX_SKEW: Final = 300  # seconds between X-TC-Timestamp and the server's clock
PARAMETERS: Final = ("ImageBase64", "ImageUrl", "CardSide")
CARD_SIDES: Final = ("FRONT", "BACK", "DOUBLE")
WARN_MSGS: Final = {
    -9102: "WARN_DRIVER_LICENSE_COPY_CARD",
    -9103: "WARN_DRIVER_LICENSE_SCREENED_CARD",
    -9104: "WARN_DRIVER_LICENSE_REFLECTION",
    -9105: "WARN_DRIVER_LICENSE_BLUR",
    -9106: "WARN_DRIVER_LICENSE_BORDER_INCOMPLETE",
}
MESSAGES: Final = {
    # Wording as real answers report it (the SDK's TencentCloudSDKError texts).
    "AuthFailure.InvalidAuthorization": (
        "The request `Authorization` header does not conform to tencentcloud standards."
    ),
    "AuthFailure.SecretIdNotFound": "The SecretId is not found, please ensure it is correct.",
    "AuthFailure.SignatureExpire": "Signature expired: timestamp differs from server time.",
    "AuthFailure.SignatureFailure": "The provided credentials could not be validated.",
    "FailedOperation.DownLoadError": "文件下载失败。",
    "FailedOperation.EmptyImageError": "图片内容为空。",
    "FailedOperation.ImageDecodeFailed": "图片解码失败。",
    "FailedOperation.ImageSizeTooLarge": "图片尺寸过大。",
    "FailedOperation.NoVehicleLicenseError": "上传的图片非行驶证",
    "InternalError": "An internal error has occurred. Retry later.",
    "InvalidParameterValue.InvalidParameterValueLimit": "参数值错误。",
    "LimitExceeded.TooLargeFileError": "文件内容太大。",
    "RequestLimitExceeded": "Your current request times exceeds the limit.",
}
# Canonical directive keys -> Tencent fields (either side that has them).
OVERRIDES: Final = {
    "plate": "PlateNo",
    "vin": "Vin",
    "owner": "Owner",
    "address": "Address",
    "model": "Model",
    "vehicle_type": "VehicleType",
    "engine_no": "EngineNo",
    "register_date": "RegisterDate",
    "issue_date": "IssueDate",
}
# An image that isn't a PNG/JPEG/BMP (by content) -> its error code.
UNREADABLE: Final = {
    Unreadable.FORMAT: "FailedOperation.ImageDecodeFailed",
    Unreadable.BOMB: "FailedOperation.ImageSizeTooLarge",
    Unreadable.UNDECODABLE: "FailedOperation.ImageDecodeFailed",
}


def envelope(response: dict[str, Any]) -> web.Response:
    return json_answer({"Response": response})


def error(code: str, message: str | None = None) -> web.Response:
    text = message or MESSAGES.get(code, code)
    return envelope({"Error": {"Code": code, "Message": text}, "RequestId": request_id()})


class _Refusal(Exception):
    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.code, self.message = code, message


def synthesize(image: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """Deterministic (FrontInfo, BackInfo) for ``image``; every value drawn in one order."""
    s = Synth(image, salt="tencent_vehicle_license")
    plate, register = s.plate(), s.day()
    issue = s.day(register)
    front = {
        "PlateNo": plate,
        "VehicleType": s.vehicle_type(),
        "Owner": s.name(),
        "Address": s.address(),
        "UseCharacter": s.choice(("非营运", "营运", "租赁")),
        "Model": s.brand_model(),
        "Vin": s.vin(),
        "EngineNo": s.engine_no(),
        "RegisterDate": register.isoformat(),
        "IssueDate": issue.isoformat(),
        "Seal": f"{plate[0]}公安局交通警察支队",
    }
    length, width, height = s.rng.randint(3800, 5200), s.rng.randint(1650, 1950), 1450
    curb = s.rng.randint(1100, 2200)
    back = {
        "PlateNo": plate,
        "FileNo": f"{s.digits(12)}",
        "AllowNum": f"{s.choice((5, 5, 5, 7))}人",
        "TotalMass": f"{curb + 400}kg",
        "CurbWeight": f"{curb}kg",
        "LoadQuality": "--",
        "ExternalSize": f"{length}×{width}×{height}mm",
        "TotalQuasiMass": "--",
        "Marks": "",
        "Record": f"检验有效期至{issue.year + 6}年{issue.month}月{plate[:2]}",
        "FuelType": s.choice(("汽油", "柴油", "电")),
        "SubPageCode": "",
    }
    return front, back


class Sim:
    provider: ClassVar[str] = "tencent_vehicle_license"
    routes: ClassVar[tuple[tuple[str, str], ...]] = (("POST", "/"),)
    default_limit: ClassVar[int] = 10
    internal_error_code: ClassVar[str] = "InternalError"

    def __init__(
        self, settings: ProviderSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        if not isinstance(settings, TencentVehicleLicenseSettings):
            raise TypeError("tencent_vehicle_license Sim needs TencentVehicleLicenseSettings")
        self.settings = settings
        self._clock = clock

    def throttled(self) -> web.Response:
        return error("RequestLimitExceeded")

    def error_in_200(self) -> web.Response:
        return error(self.internal_error_code)

    async def handle(self, request: web.Request, body: bytes) -> web.Response:
        try:
            self._check_common(request)
            self._check_auth(request, body)
            card_side, image = self._parse_body(body)
        except _Refusal as refusal:
            return error(refusal.code, refusal.message)
        directive = read_directive(image)
        if directive.fault:
            return await faults.answer(directive.fault, request, self)
        if directive.error:
            return error(directive.error, directive.message)
        if directive.empty:
            return error("FailedOperation.NoVehicleLicenseError")
        return envelope(self._answer(image, card_side, directive))

    def _check_common(self, request: web.Request) -> None:
        for header, name in (("X-TC-Action", "Action"), ("X-TC-Version", "Version")):
            if not request.headers.get(header):
                raise _Refusal("MissingParameter", f"The request is missing `{name}`.")
        if request.headers["X-TC-Action"] != ACTION:
            raise _Refusal("InvalidAction", "The action does not exist.")
        if request.headers["X-TC-Version"] != VERSION:
            raise _Refusal("NoSuchVersion", "The API version does not exist.")
        if request.headers.get("X-TC-Region") not in REGIONS:
            raise _Refusal("UnsupportedRegion", "The action does not support this region.")

    def _check_auth(self, request: web.Request, body: bytes) -> None:
        stamp = request.headers.get("X-TC-Timestamp", "")
        if not stamp.isdigit():
            raise _Refusal("MissingParameter", "The request is missing a valid `Timestamp`.")
        timestamp = int(stamp)
        if abs(self._clock() - timestamp) > MAX_SKEW:
            raise _Refusal("AuthFailure.SignatureExpire")
        auth = tencent_sign.parse_authorization(request.headers.get("Authorization", ""))
        if (
            auth is None
            or auth.service != SERVICE
            or not {"content-type", "host"} <= set(auth.signed_headers)
        ):
            raise _Refusal("AuthFailure.InvalidAuthorization")
        secret_id, secret_key = self.settings.secret_id, self.settings.secret_key
        if (
            secret_id is None
            or secret_key is None
            or not hmac.compare_digest(auth.secret_id, secret_id.get_secret_value())
        ):
            raise _Refusal("AuthFailure.SecretIdNotFound")
        if auth.date != tencent_sign.utc_date(timestamp):
            raise _Refusal("AuthFailure.SignatureFailure", "Credential date mismatch.")
        headers = [(name, request.headers.get(name, "")) for name in auth.signed_headers]
        canonical = tencent_sign.canonical_request(
            method=request.method,
            uri=request.path,
            query=request.query_string,
            headers=headers,
            payload_hash=tencent_sign.sha256_hex(body),
        )
        to_sign = tencent_sign.string_to_sign(timestamp, auth.date, SERVICE, canonical)
        expected = tencent_sign.signature(
            secret_key.get_secret_value(), auth.date, SERVICE, to_sign
        )
        if not hmac.compare_digest(expected, auth.signature):
            raise _Refusal("AuthFailure.SignatureFailure")

    def _parse_body(self, body: bytes) -> tuple[str, bytes]:
        try:
            params = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise _Refusal("InvalidParameter", "The request body is not valid JSON.") from None
        if not isinstance(params, dict):
            raise _Refusal("InvalidParameter", "The request body must be a JSON object.")
        for name, value in params.items():
            if name not in PARAMETERS:
                raise _Refusal("UnknownParameter", f"The parameter `{name}` is not recognized.")
            if not isinstance(value, str):
                raise _Refusal("InvalidParameter", f"The parameter `{name}` must be a string.")
        card_side = params.get("CardSide", "FRONT")
        if card_side not in CARD_SIDES:
            raise _Refusal("InvalidParameterValue.InvalidParameterValueLimit")
        if params.get("ImageUrl"):  # "如果都提供,只使用 ImageUrl"; nothing to fetch here
            raise _Refusal("FailedOperation.DownLoadError")
        b64 = params.get("ImageBase64", "")
        if not b64:
            raise _Refusal("FailedOperation.EmptyImageError")
        if len(b64) > MAX_B64:
            raise _Refusal("LimitExceeded.TooLargeFileError")
        try:
            image = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise _Refusal("FailedOperation.ImageDecodeFailed") from None
        info = read_image(image)
        if isinstance(info, Unreadable):
            raise _Refusal(UNREADABLE[info])
        return card_side, image

    def _answer(self, image: bytes, card_side: str, directive: Directive) -> dict[str, Any]:
        front, back = synthesize(image)
        for key, value in directive.fields.items():
            target = OVERRIDES.get(key, key)
            for info in (front, back):
                if target in info:
                    info[target] = value
        codes = list(directive.warn)
        return {
            "FrontInfo": front if card_side in ("FRONT", "DOUBLE") else None,
            "BackInfo": back if card_side in ("BACK", "DOUBLE") else None,
            "RecognizeWarnCode": codes,
            "RecognizeWarnMsg": [WARN_MSGS.get(code, "WARN_UNKNOWN") for code in codes],
            "RequestId": request_id(),
        }
