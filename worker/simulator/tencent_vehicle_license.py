"""Simulator of Tencent Cloud OCR ``VehicleLicenseOCR`` (2018-11-19) on ``POST /``.

Checks, in the order the real gateway reports them: the request's ``Content-Type`` (a POST
to API 3.0 is ``application/json``; anything else answers ``InvalidParameter``),
``X-TC-Action`` / ``X-TC-Version`` / ``X-TC-Region``, ``X-TC-Timestamp`` (5 minutes of skew
at most), the TC3-HMAC-SHA256 ``Authorization`` against
``VREC_TENCENT_VEHICLE_LICENSE__SECRET_ID/__SECRET_KEY`` (no credentials configured: every
call fails auth), the daily quota (``ResourceUnavailable.ResourcePackageRunOut``), then
the JSON body, the image, its directive, and what it shows. Every answer is HTTP 200 in
Tencent's ``{"Response": ...}`` envelope with ``Content-Type: application/json`` exactly:
the official SDK (tencentcloud-sdk-python ``AbstractClient._check_error``) reads an error
only from an answer of that type (or ``text/plain``).

What the image shows decides the answer (:mod:`worker.simulator.scene`):

- no licence page: ``FailedOperation.NoVehicleLicenseError`` (a page whose mark is
  illegible, e.g. far too small: ``FailedOperation.ImageBlur``);
- CardSide FRONT on an image with only a back page, or BACK with only a front:
  ``FailedOperation.LicenseCardSideError``; two pages of the asked side:
  ``FailedOperation.LicenseMultiCardError``; DOUBLE reads whichever sides are there;
- an image below the doc's recommended 500x800 (either orientation) is read with
  ``RecognizeWarnCode`` -9105 (blur), as the doc only recommends the size;
- the seeded shares: a warning (-9102 copy, -9103 screen, -9104 glare, -9105 blur,
  -9106 border) or ``FailedOperation.ImageBlur``.

Fields are drawn from the page's printed seed (:func:`synthesize`), so a page reads the
same whatever vrec did to its size. ``ImageUrl`` can't be fetched here and answers
``FailedOperation.DownLoadError``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any, ClassVar, Final

from aiohttp import web

from worker.config import ProviderSettings
from worker.providers import tencent_sign
from worker.providers.tencent_vehicle_license import TencentVehicleLicenseSettings
from worker.simulator.base import Call, Flaw, Refusal, SimBase
from worker.simulator.common import exact_json_answer
from worker.simulator.directives import Directive
from worker.simulator.scene import Page, Scene, Unreadable
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
    "FailedOperation.ImageBlur": "图片模糊。",
    "FailedOperation.ImageDecodeFailed": "图片解码失败。",
    "FailedOperation.ImageSizeTooLarge": "图片尺寸过大。",
    "FailedOperation.LicenseCardSideError": "入参CardSide错误，与实际上传的卡证正副页类型不符",
    "FailedOperation.LicenseMultiCardError": (
        "图片中存在两张及以上同面卡证，请上传卡证单面图片或一正一反双面图片"
    ),
    "FailedOperation.NoVehicleLicenseError": "上传的图片非行驶证",
    "InternalError": "An internal error has occurred. Retry later.",
    "InvalidParameterValue.InvalidParameterValueLimit": "参数值错误。",
    "LimitExceeded.TooLargeFileError": "文件内容太大。",
    "RequestLimitExceeded": "Your current request times exceeds the limit.",
    "ResourceUnavailable.ResourcePackageRunOut": "账号资源包耗尽。",
}
RECOMMENDED: Final = (500, 800)  # "分辨率建议500*800以上": shorter, longer side
BLUR: Final = -9105
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
    return exact_json_answer({"Response": response})


def error(code: str, message: str | None = None) -> web.Response:
    text = message or MESSAGES.get(code, code)
    return envelope({"Error": {"Code": code, "Message": text}, "RequestId": request_id()})


def refuse(code: str, message: str | None = None) -> Refusal:
    return Refusal(error(code, message))


def synthesize(seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Deterministic (FrontInfo, BackInfo) of the licence printed from ``seed``; every
    value drawn in one order."""
    s = Synth(seed.to_bytes(8, "big"), salt="tencent_vehicle_license")
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


class Sim(SimBase):
    provider: ClassVar[str] = "tencent_vehicle_license"
    routes: ClassVar[tuple[tuple[str, str], ...]] = (("POST", "/"),)
    default_limit: ClassVar[int] = 10
    internal_error_code: ClassVar[str] = "InternalError"
    settings_class: ClassVar[type[ProviderSettings]] = TencentVehicleLicenseSettings
    settings: TencentVehicleLicenseSettings

    def throttled(self) -> web.Response:
        return error("RequestLimitExceeded")

    def error_in_200(self) -> web.Response:
        return error(self.internal_error_code)

    def quota_exhausted(self) -> web.Response:
        return error("ResourceUnavailable.ResourcePackageRunOut")

    def unreadable(self, kind: Unreadable) -> web.Response:
        return error(UNREADABLE[kind])

    def directed_error(self, directive: Directive) -> web.Response:
        return error(directive.error or "", directive.message)

    def nothing_found(self, call: Call) -> web.Response:
        return error("FailedOperation.NoVehicleLicenseError")

    def accept(self, request: web.Request, body: bytes) -> Call:
        if request.content_type != "application/json":
            raise refuse(
                "InvalidParameter",
                f"Content-Type `{request.content_type}` is not supported; "
                "a POST request takes application/json.",
            )
        self._check_common(request)
        secret_id = self._check_auth(request, body)
        card_side, image = self._parse_body(body)
        return Call(secret_id, image, {"card_side": card_side})

    def _check_common(self, request: web.Request) -> None:
        for header, name in (("X-TC-Action", "Action"), ("X-TC-Version", "Version")):
            if not request.headers.get(header):
                raise refuse("MissingParameter", f"The request is missing `{name}`.")
        if request.headers["X-TC-Action"] != ACTION:
            raise refuse("InvalidAction", "The action does not exist.")
        if request.headers["X-TC-Version"] != VERSION:
            raise refuse("NoSuchVersion", "The API version does not exist.")
        if request.headers.get("X-TC-Region") not in REGIONS:
            raise refuse("UnsupportedRegion", "The action does not support this region.")

    def _check_auth(self, request: web.Request, body: bytes) -> str:
        """The caller's SecretId once its signature checks out."""
        stamp = request.headers.get("X-TC-Timestamp", "")
        if not stamp.isdigit():
            raise refuse("MissingParameter", "The request is missing a valid `Timestamp`.")
        timestamp = int(stamp)
        if abs(self._clock() - timestamp) > MAX_SKEW:
            raise refuse("AuthFailure.SignatureExpire")
        auth = tencent_sign.parse_authorization(request.headers.get("Authorization", ""))
        if (
            auth is None
            or auth.service != SERVICE
            or not {"content-type", "host"} <= set(auth.signed_headers)
        ):
            raise refuse("AuthFailure.InvalidAuthorization")
        secret_id, secret_key = self.settings.secret_id, self.settings.secret_key
        if (
            secret_id is None
            or secret_key is None
            or not hmac.compare_digest(auth.secret_id, secret_id.get_secret_value())
        ):
            raise refuse("AuthFailure.SecretIdNotFound")
        if auth.date != tencent_sign.utc_date(timestamp):
            raise refuse("AuthFailure.SignatureFailure", "Credential date mismatch.")
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
            raise refuse("AuthFailure.SignatureFailure")
        return auth.secret_id

    def _parse_body(self, body: bytes) -> tuple[str, bytes]:
        try:
            params = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise refuse("InvalidParameter", "The request body is not valid JSON.") from None
        if not isinstance(params, dict):
            raise refuse("InvalidParameter", "The request body must be a JSON object.")
        for name, value in params.items():
            if name not in PARAMETERS:
                raise refuse("UnknownParameter", f"The parameter `{name}` is not recognized.")
            if not isinstance(value, str):
                raise refuse("InvalidParameter", f"The parameter `{name}` must be a string.")
        card_side = params.get("CardSide", "FRONT")
        if card_side not in CARD_SIDES:
            raise refuse("InvalidParameterValue.InvalidParameterValueLimit")
        if params.get("ImageUrl"):  # "如果都提供,只使用 ImageUrl"; nothing to fetch here
            raise refuse("FailedOperation.DownLoadError")
        b64 = params.get("ImageBase64", "")
        if not b64:
            raise refuse("FailedOperation.EmptyImageError")
        if len(b64) > MAX_B64:
            raise refuse("LimitExceeded.TooLargeFileError")
        try:
            image = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise refuse("FailedOperation.ImageDecodeFailed") from None
        return card_side, image

    def answer(
        self, call: Call, seen: Scene, directive: Directive, flaw: Flaw | None
    ) -> web.Response:
        card_side = call.options["card_side"]
        fronts = [p for p in seen.pages if p.side == "FRONT"]
        backs = [p for p in seen.pages if p.side == "BACK"]
        refused = _refusal(seen, card_side, fronts, backs)
        if refused is not None:
            return error(refused)
        if flaw is Flaw.FAILURE:
            return error("FailedOperation.ImageBlur")
        front = fronts[0] if card_side in ("FRONT", "DOUBLE") and fronts else None
        back = backs[0] if card_side in ("BACK", "DOUBLE") and backs else None
        codes = list(directive.warn) + _warnings(seen, flaw)
        return envelope(self._response(front, back, directive, codes))

    def _response(
        self, front: Page | None, back: Page | None, directive: Directive, codes: list[int]
    ) -> dict[str, Any]:
        front_info = synthesize(front.seed)[0] if front else None
        back_info = synthesize(back.seed)[1] if back else None
        if front_info and back_info:  # two pages of one licence
            back_info["PlateNo"] = front_info["PlateNo"]
        for key, value in directive.fields.items():
            target = OVERRIDES.get(key, key)
            for info in (front_info, back_info):
                if info is not None and target in info:
                    info[target] = value
        return {
            "FrontInfo": front_info,
            "BackInfo": back_info,
            "RecognizeWarnCode": codes,
            "RecognizeWarnMsg": [WARN_MSGS.get(code, "WARN_UNKNOWN") for code in codes],
            "RequestId": request_id(),
        }


def _refusal(seen: Scene, card_side: str, fronts: list[Page], backs: list[Page]) -> str | None:
    """The error code of an image this CardSide can't be read from, or None."""
    if not seen.pages:
        illegible = "licence" in seen.illegible
        return "FailedOperation.ImageBlur" if illegible else "FailedOperation.NoVehicleLicenseError"
    if (card_side == "FRONT" and not fronts) or (card_side == "BACK" and not backs):
        return "FailedOperation.LicenseCardSideError"
    asked = {"FRONT": [fronts], "BACK": [backs], "DOUBLE": [fronts, backs]}[card_side]
    if any(len(pages) > 1 for pages in asked):
        return "FailedOperation.LicenseMultiCardError"
    return None


def _warnings(seen: Scene, flaw: Flaw | None) -> list[int]:
    """-9105 below the recommended size, and a seeded warning's code."""
    codes = []
    short, long = sorted((seen.width, seen.height))
    if short < RECOMMENDED[0] or long < RECOMMENDED[1]:
        codes.append(BLUR)
    if flaw is Flaw.WARNING:
        drawn = list(WARN_MSGS)[int(seen.fraction("tencent:warning") * len(WARN_MSGS))]
        if drawn not in codes:
            codes.append(drawn)
    return codes
