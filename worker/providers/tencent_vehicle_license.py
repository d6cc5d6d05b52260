"""Tencent Cloud OCR ``VehicleLicenseOCR`` (API version 2018-11-19): the 行驶证 reader.

Request: ``POST /`` with a JSON body ``{"ImageBase64", "CardSide"}``, the common
parameters in ``X-TC-*`` headers and a TC3-HMAC-SHA256 ``Authorization``
(:mod:`worker.providers.tencent_sign`). Every answer is HTTP 200 with ``{"Response": {...}}``;
failures carry ``Response.Error{Code, Message}``, mapped by
:data:`worker.providers.tencent_codes.ERRORS`.

Billing: Tencent OCR bills successful recognitions only, so error answers (including
``NoVehicleLicenseError``) are recorded as not billed.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from datetime import date
from itertools import zip_longest
from typing import Any, ClassVar, Final, Literal
from urllib.parse import urlsplit

from pydantic import SecretStr

from worker.config import FitMode, ProviderSettings
from worker.errors import BadResponse, ConfigError, Outcome
from worker.image_limits import ImageLimits, PreparedImage
from worker.providers import tencent_sign
from worker.providers.base import (
    VehicleLicenseReading,
    VendorAnswer,
    VendorRequest,
    VendorResponse,
    check_options,
)
from worker.providers.common import (
    NO_RESULT,
    check_b64_size,
    decode_json,
    http_status_error,
    int_of,
    secret_value,
    strip_secrets,
    text,
)
from worker.providers.tencent_codes import classify

NAME: Final = "tencent_vehicle_license"
SERVICE: Final = "ocr"
ACTION: Final = "VehicleLicenseOCR"
VERSION: Final = "2018-11-19"
CONTENT_TYPE: Final = "application/json; charset=utf-8"  # as in Tencent's signing example


FRONT_FIELDS: Final = {
    "PlateNo": "plate_no",
    "VehicleType": "vehicle_type",
    "Owner": "owner",
    "Address": "address",
    "UseCharacter": "use_character",
    "Model": "model",
    "Vin": "vin",
    "EngineNo": "engine_no",
    "Seal": "seal",
}
BACK_FIELDS: Final = {
    "PlateNo": "plate_no",
    "FileNo": "file_no",
    "AllowNum": "allow_num",
    "TotalMass": "total_mass",
    "CurbWeight": "curb_weight",
    "LoadQuality": "load_quality",
    "ExternalSize": "external_size",
    "TotalQuasiMass": "total_quasi_mass",
    "Marks": "marks",
    "Record": "record",
    "FuelType": "fuel_type",
    "SubPageCode": "sub_page_code",
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date(value: Any) -> date | None:
    day = text(value)
    if day is None or not _DATE.match(day):
        return None
    try:
        return date.fromisoformat(day)
    except ValueError:
        return None


def readings_of(response: Mapping[str, Any]) -> list[VehicleLicenseReading]:
    """One reading per side present in a success ``Response``, warnings on each."""
    codes = [c for c in map(int_of, response.get("RecognizeWarnCode") or []) if c is not None]
    msgs = [str(m) for m in response.get("RecognizeWarnMsg") or []]
    readings = []
    for key, side, fields in (
        ("FrontInfo", "FRONT", FRONT_FIELDS),
        ("BackInfo", "BACK", BACK_FIELDS),
    ):
        info = response.get(key)
        if not isinstance(info, dict):
            continue
        reading = VehicleLicenseReading(side=side, warn_codes=list(codes), warn_msgs=list(msgs))
        for vendor_field, attr in fields.items():
            setattr(reading, attr, text(info.get(vendor_field)))
        if side == "FRONT":
            reading.register_date = _date(info.get("RegisterDate"))
            reading.issue_date = _date(info.get("IssueDate"))
        readings.append(reading)
    return readings


Region = Literal["ap-beijing", "ap-guangzhou", "ap-hongkong", "ap-shanghai"]


class TencentVehicleLicenseSettings(ProviderSettings):
    """``VREC_TENCENT_VEHICLE_LICENSE__*``: the API key pair, region and endpoint."""

    base_url: str = "https://ocr.tencentcloudapi.com/"
    secret_id: SecretStr | None = None
    secret_key: SecretStr | None = None
    region: Region = "ap-guangzhou"


class TencentVehicleLicense:
    """The adapter: signs requests, maps answers. No I/O (see :mod:`worker.providers.base`)."""

    name: ClassVar[str] = NAME
    settings_model: ClassVar[type[ProviderSettings]] = TencentVehicleLicenseSettings
    limits: ClassVar[ImageLimits] = ImageLimits(
        formats=frozenset({"JPEG", "PNG", "BMP"}),
        max_b64_bytes=7_000_000,  # "经Base64编码后不超过 7M", read as 7,000,000 bytes
        # The doc gives no minimum; 32 px is vrec's own floor, below which no licence reads.
        min_side=32,
        recommended_min=(500, 800),  # "分辨率建议500*800以上"
    )
    default_rate: ClassVar[float] = 10.0
    # A licence is small print (VIN, engine number, dates): every pixel allowed counts.
    fit: ClassVar[FitMode] = "exact"
    option_choices: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "card_side": ("FRONT", "BACK", "DOUBLE")
    }

    def __init__(
        self,
        settings: TencentVehicleLicenseSettings,
        *,
        clock: Callable[[], float] = time.time,  # tests sign with a fixed or skewed time
    ) -> None:
        self.settings = settings
        self._clock = clock

    def credential_id(self) -> str:
        secret_id = self.settings.secret_id
        if secret_id is None:
            return "unset"
        value = secret_id.get_secret_value()
        return f"{value[:6]}~{hashlib.sha256(value.encode()).hexdigest()[:10]}"

    def require_credentials(self) -> None:
        if not secret_value(self.settings.secret_id) or not secret_value(self.settings.secret_key):
            raise ConfigError(
                f"{NAME}: VREC_TENCENT_VEHICLE_LICENSE__SECRET_ID and "
                "VREC_TENCENT_VEHICLE_LICENSE__SECRET_KEY must both be set"
            )

    def build_request(self, image: PreparedImage, options: Mapping[str, str]) -> VendorRequest:
        card_side = check_options(self, options).get("card_side", "FRONT")
        self.require_credentials()
        check_b64_size(image, self.limits, NAME)
        # Built as bytes once: base64 needs no JSON escaping, and the 7 MB string is never
        # decoded, re-encoded or dumped twice. The layout equals json.dumps' default.
        body = b'{"ImageBase64": "' + image.b64 + b'", "CardSide": "' + card_side.encode() + b'"}'
        url = urlsplit(self.settings.base_url)
        host = url.netloc
        timestamp = int(self._clock())
        signed = tencent_sign.sign(
            secret_id=secret_value(self.settings.secret_id),
            secret_key=secret_value(self.settings.secret_key),
            service=SERVICE,
            timestamp=timestamp,
            headers=(("Content-Type", CONTENT_TYPE), ("Host", host)),
            payload=body,
            uri=url.path or "/",
        )
        headers = {
            "Authorization": signed.authorization,
            "Content-Type": CONTENT_TYPE,
            "Host": host,
            "X-TC-Action": ACTION,
            "X-TC-Version": VERSION,
            "X-TC-Region": self.settings.region,
            "X-TC-Timestamp": str(timestamp),
        }
        return VendorRequest("POST", self.settings.base_url, headers, body)

    def parse_response(self, response: VendorResponse) -> VendorAnswer:
        status = response.status
        if status != 200:  # Tencent answers 200 even for errors: a proxy or gateway's
            raise http_status_error(status, NAME)
        decoded = decode_json(response.body, NAME, status)
        inner = decoded.get("Response") if isinstance(decoded, dict) else None
        if not isinstance(inner, dict):
            raise BadResponse("answer has no Response object", provider=NAME, http_status=status)
        raw = strip_secrets(decoded)
        request_id = text(inner.get("RequestId"))
        error = inner.get("Error")
        if error is not None:
            return self._error(error, request_id, raw)
        readings = readings_of(inner)
        if not readings:  # neither side read: nothing found, but the call succeeded
            return VendorAnswer(Outcome.NO_RESULT, raw, request_id=request_id, billed=True)
        first = readings[0]
        warnings = [
            msg if msg is not None else str(code)
            for code, msg in zip_longest(first.warn_codes, first.warn_msgs)
        ]
        return VendorAnswer(
            Outcome.SUCCEEDED,
            raw,
            list(readings),
            request_id=request_id,
            billed=True,
            warnings=warnings,
        )

    def _error(self, error: Any, request_id: str | None, raw: Any) -> VendorAnswer:
        if not isinstance(error, dict) or not isinstance(error.get("Code"), str):
            raise BadResponse("Response.Error has no Code", provider=NAME, http_status=200)
        code: str = error["Code"]
        kind = classify(code)
        if kind == NO_RESULT:
            return VendorAnswer(Outcome.NO_RESULT, raw, vendor_code=code, request_id=request_id)
        message = (text(error.get("Message")) or code)[:300]
        raise kind(
            message,
            provider=NAME,
            vendor_code=code,
            http_status=200,
            request_id=request_id,
            billed=False,
            raw=raw,
        )
