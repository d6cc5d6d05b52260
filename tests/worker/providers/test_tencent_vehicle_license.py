"""The Tencent VehicleLicenseOCR adapter: against the simulator over loopback, and offline."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date
from typing import Any

import pytest

from tests.support.vendors import NON_200_ANSWERS, Loopback, Vendor, fake_secret, prepared
from worker.errors import (
    BadResponse,
    ConfigError,
    InvalidImage,
    JobError,
    Outcome,
    ProviderUnavailable,
    RateLimited,
    VendorRejectedImage,
)
from worker.providers.base import Provider, VehicleLicenseReading, VendorAnswer
from worker.providers.registry import get_provider
from worker.providers.tencent_codes import ERRORS, classify
from worker.simulator.directives import make_image
from worker.simulator.samples import everything, licence_page, licence_pages, vehicle_photo

NAME = "tencent_vehicle_license"
SECRET_ID = fake_secret(NAME, "secret_id")
SECRET_KEY = fake_secret(NAME, "secret_key")
pytestmark = pytest.mark.vendor(NAME)


def test_contract(vendor: Vendor) -> None:
    provider = get_provider("tencent_vehicle_license", vendor.settings())
    assert isinstance(provider, Provider)
    assert provider.name == "tencent_vehicle_license"
    assert provider.limits.max_b64_bytes == 7_000_000
    assert provider.limits.formats == frozenset({"JPEG", "PNG", "BMP"})
    assert provider.default_rate == 10.0
    assert provider.option_choices == {"card_side": ("FRONT", "BACK", "DOUBLE")}
    cred = provider.credential_id()
    assert cred == vendor.adapter().credential_id()
    assert SECRET_KEY not in cred
    assert SECRET_ID not in cred


# --- over loopback -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("card_side", "sides"),
    [("FRONT", ["FRONT"]), ("BACK", ["BACK"]), ("DOUBLE", ["FRONT", "BACK"])],
)
def test_success(vendor: Vendor, card_side: str, sides: list[str]) -> None:
    pages = licence_pages(sides, 3, (900 * len(sides), 640))  # each page above 500x800
    image = prepared({"plate": "粤B12345", "warn": [-9102, -9104]}, data=pages)

    async def scenario() -> tuple[Any, Any]:
        async with vendor.loopback() as lb:
            return await lb.call(image, {"card_side": card_side}), await lb.call(
                image, {"card_side": card_side}
            )

    first, second = asyncio.run(scenario())
    assert isinstance(first, VendorAnswer), first
    assert first.outcome is Outcome.SUCCEEDED
    assert first.billed
    assert first.request_id
    assert first.request_id != second.request_id
    assert [r.side for r in first.readings] == sides  # type: ignore[union-attr]
    assert first.readings == second.readings  # deterministic per image
    assert first.warnings == ["WARN_DRIVER_LICENSE_COPY_CARD", "WARN_DRIVER_LICENSE_REFLECTION"]
    for reading in first.readings:
        assert isinstance(reading, VehicleLicenseReading)
        assert reading.plate_no == "粤B12345"
        assert reading.warn_codes == [-9102, -9104]
        if reading.side == "FRONT":
            assert isinstance(reading.register_date, date)
            assert reading.vin is not None
            assert len(reading.vin) == 17
        else:
            assert reading.register_date is None
            assert reading.file_no


def test_default_card_side_is_front(vendor: Vendor) -> None:
    async def scenario() -> Any:
        async with vendor.loopback() as lb:
            return await lb.call(prepared(data=licence_page("FRONT", 5)))

    result = asyncio.run(scenario())
    assert [r.side for r in result.readings] == ["FRONT"]
    assert result.warnings == []  # 1000x700: above the recommended size


FRONT, BACK = licence_page("FRONT", 6), licence_page("BACK", 7)
# (image, CardSide) -> what the vendor answers, from what the image shows.
CONTENT_CASES: list[tuple[str, bytes, str, Outcome, str | None]] = [
    ("front as front", FRONT, "FRONT", Outcome.SUCCEEDED, None),
    ("back as back", BACK, "BACK", Outcome.SUCCEEDED, None),
    ("front as back", FRONT, "BACK", Outcome.INVALID_IMAGE, "FailedOperation.LicenseCardSideError"),
    ("back as front", BACK, "FRONT", Outcome.INVALID_IMAGE, "FailedOperation.LicenseCardSideError"),
    ("back as double", BACK, "DOUBLE", Outcome.SUCCEEDED, None),
    (
        "two fronts",
        licence_pages(["FRONT", "FRONT"], 8, (1800, 640)),
        "FRONT",
        Outcome.INVALID_IMAGE,
        "FailedOperation.LicenseMultiCardError",
    ),
    (
        "a car",
        vehicle_photo(9),
        "FRONT",
        Outcome.NO_RESULT,
        "FailedOperation.NoVehicleLicenseError",
    ),
    ("flat", make_image(), "DOUBLE", Outcome.NO_RESULT, "FailedOperation.NoVehicleLicenseError"),
    (
        "10x10",
        make_image(size=(10, 10)),
        "FRONT",
        Outcome.NO_RESULT,
        "FailedOperation.NoVehicleLicenseError",
    ),
    (
        "a page far too small to read",
        licence_page("FRONT", 10, (70, 49)),
        "FRONT",
        Outcome.INVALID_IMAGE,
        "FailedOperation.ImageBlur",
    ),
]


@pytest.mark.parametrize(
    ("case", "data", "card_side", "outcome", "code"),
    CONTENT_CASES,
    ids=[c[0] for c in CONTENT_CASES],
)
def test_answers_follow_what_the_image_shows(
    vendor: Vendor, case: str, data: bytes, card_side: str, outcome: Outcome, code: str | None
) -> None:
    result = vendor.one(prepared(data=data), options={"card_side": card_side})
    assert result.outcome is outcome, (case, result)
    assert result.vendor_code == code
    assert result.billed is (outcome is Outcome.SUCCEEDED)


def test_below_the_recommended_size_reads_with_a_blur_warning(vendor: Vendor) -> None:
    small = vendor.one(prepared(data=licence_page("FRONT", 11, (480, 336))))
    assert isinstance(small, VendorAnswer)
    assert small.outcome is Outcome.SUCCEEDED
    assert small.warnings == ["WARN_DRIVER_LICENSE_BLUR"]
    portrait = vendor.one(prepared(data=licence_page("FRONT", 11, (600, 700))))  # 600 < 800
    assert portrait.warnings == ["WARN_DRIVER_LICENSE_BLUR"]  # type: ignore[union-attr]


def test_a_page_reads_the_same_at_any_size(vendor: Vendor) -> None:
    big, small = (
        vendor.one(prepared(data=licence_page("BACK", 12, size)), options={"card_side": "BACK"})
        for size in ((1600, 1120), (800, 560))
    )
    assert isinstance(big, VendorAnswer)
    assert isinstance(small, VendorAnswer)
    assert big.readings == small.readings


def test_seeded_flaws(vendor: Vendor) -> None:
    """failure_rate and warning_rate: the share of good images hit, decided per image."""
    failing = vendor.one(prepared(data=FRONT), vendor.settings(failure_rate=1.0))
    assert failing.outcome is Outcome.INVALID_IMAGE
    assert failing.vendor_code == "FailedOperation.ImageBlur"
    warned = vendor.one(prepared(data=FRONT), vendor.settings(warning_rate=1.0))
    assert isinstance(warned, VendorAnswer)
    (warning,) = warned.warnings
    assert warning.startswith("WARN_DRIVER_LICENSE_")
    settings = vendor.settings(warning_rate=0.3, failure_rate=0.1, seed=5, throttle=False)
    images = [prepared(data=everything(i, (1100, 560))) for i in range(30)]

    async def scenario() -> list[Any]:
        async with vendor.loopback(settings) as lb:
            return [await lb.call(image) for image in images]

    first, again = asyncio.run(scenario()), asyncio.run(scenario())
    view = [(r.outcome, getattr(r, "warnings", None)) for r in first]
    assert view == [(r.outcome, getattr(r, "warnings", None)) for r in again]  # per image
    outcomes = [outcome for outcome, _ in view]
    assert 0 < outcomes.count(Outcome.INVALID_IMAGE) < 10
    assert outcomes.count(Outcome.SUCCEEDED) > 15


@pytest.mark.parametrize(
    ("directive", "outcome", "code"),
    [
        ({"empty": True}, Outcome.NO_RESULT, "FailedOperation.NoVehicleLicenseError"),
        (
            {"error": "FailedOperation.ImageNoText"},
            Outcome.NO_RESULT,
            "FailedOperation.ImageNoText",
        ),
        (
            {"error": "FailedOperation.ImageBlur"},
            Outcome.INVALID_IMAGE,
            "FailedOperation.ImageBlur",
        ),
        ({"error": "InternalError"}, Outcome.TRANSIENT, "InternalError"),
        ({"error": "ResourceUnavailable.InArrears"}, Outcome.PROVIDER_UNAVAILABLE, None),
    ],
)
def test_directed_outcomes(
    vendor: Vendor, directive: dict[str, Any], outcome: Outcome, code: str | None
) -> None:
    async def scenario() -> Any:
        async with vendor.loopback() as lb:
            return await lb.call(prepared(directive))

    result = asyncio.run(scenario())
    assert result.outcome is outcome
    assert result.vendor_code == (code or directive.get("error"))
    assert result.request_id
    assert result.billed is False


def test_large_image_is_streamed_and_accepted(vendor: Vendor) -> None:
    png = licence_page("FRONT", 13, fmt="PNG")
    png = prepared({"plate": "京A00001"}, data=png).data + bytes(range(256)) * 20_000  # trailing
    image = prepared(data=png)
    assert 6_000_000 < len(image.b64) <= 7_000_000

    async def scenario() -> Any:
        async with vendor.loopback() as lb:
            return await lb.call(image)

    result = asyncio.run(scenario())
    assert isinstance(result, VendorAnswer), result
    assert result.readings[0].plate_no == "京A00001"  # type: ignore[union-attr]


def test_too_large_is_refused_before_calling(vendor: Vendor) -> None:
    data = b"x" * 5_300_000
    with pytest.raises(InvalidImage, match="over 7000000"):
        vendor.adapter().build_request(prepared(data=data), {})


def test_invalid_image_from_the_vendor(vendor: Vendor) -> None:
    async def scenario() -> Any:
        async with vendor.loopback() as lb:
            return await lb.call(prepared(data=b"GIF89a not really an image"))

    result = asyncio.run(scenario())
    assert isinstance(result, VendorRejectedImage)
    assert result.vendor_code == "FailedOperation.ImageDecodeFailed"
    assert result.retryable is False


def test_rate_limited_by_real_throttling(vendor: Vendor) -> None:
    async def scenario() -> tuple[list[Any], dict[str, Any]]:
        async with vendor.loopback() as lb:
            results = await asyncio.gather(*(lb.call(prepared()) for _ in range(15)))
            return list(results), lb.simulator.snapshot()["tencent_vehicle_license"]

    results, stats = asyncio.run(scenario())
    limited = [r for r in results if isinstance(r, RateLimited)]
    assert len(limited) == stats["throttled"] >= 5
    assert all(r.vendor_code == "RequestLimitExceeded" and r.retryable for r in limited)
    assert sum(isinstance(r, VendorAnswer) for r in results) == 15 - len(limited)


def _auth_failures(lb: Loopback) -> list[Any]:
    now = time.time()
    cases = [
        lb.adapter(secret_key="not-the-key"),
        lb.adapter(secret_id="AKIDunknown000"),
        lb.adapter(clock=lambda: now - 600),
        lb.adapter(clock=lambda: now + 600),
    ]
    return [lb.call(prepared(), adapter=a) for a in cases]


def test_provider_unavailable_on_auth_failures(vendor: Vendor) -> None:
    async def scenario() -> list[Any]:
        async with vendor.loopback() as lb:
            results = list(await asyncio.gather(*_auth_failures(lb)))
            # A body changed after signing: the signature no longer matches.
            request = lb.adapter().build_request(prepared(), {})
            tampered = type(request)(
                request.method, request.url, request.headers, (request.body or b"")[:-2] + b" }"
            )
            from worker import http

            response = await http.send(lb.session, tampered, provider="t", timeout=5)
            try:
                lb.adapter().parse_response(response)
            except JobError as exc:
                results.append(exc)
            return results

    results = asyncio.run(scenario())
    assert [r.vendor_code for r in results] == [
        "AuthFailure.SignatureFailure",
        "AuthFailure.SecretIdNotFound",
        "AuthFailure.SignatureExpire",
        "AuthFailure.SignatureExpire",
        "AuthFailure.SignatureFailure",
    ]
    for result in results:
        assert isinstance(result, ProviderUnavailable)
        assert result.outcome is Outcome.PROVIDER_UNAVAILABLE
        assert not result.retryable


def test_simulator_without_credentials_refuses_everyone(vendor: Vendor) -> None:
    async def scenario() -> Any:
        async with vendor.loopback(vendor.settings(secret_id=None, secret_key=None)) as lb:
            return await lb.call(prepared(), adapter=lb.adapter())

    result = asyncio.run(scenario())
    assert isinstance(result, ProviderUnavailable)
    assert result.vendor_code == "AuthFailure.SecretIdNotFound"


CODES: dict[str, Outcome] = {
    "FailedOperation.NoVehicleLicenseError": Outcome.NO_RESULT,
    "FailedOperation.ImageNoText": Outcome.NO_RESULT,
    "FailedOperation.EmptyImageError": Outcome.INVALID_IMAGE,
    "FailedOperation.ImageBlur": Outcome.INVALID_IMAGE,
    "FailedOperation.ImageDecodeFailed": Outcome.INVALID_IMAGE,
    "FailedOperation.ImageSizeTooLarge": Outcome.INVALID_IMAGE,
    "FailedOperation.LicenseCardSideError": Outcome.INVALID_IMAGE,
    "FailedOperation.LicenseMultiCardError": Outcome.INVALID_IMAGE,
    "InvalidParameter.EngineImageDecodeFailed": Outcome.INVALID_IMAGE,
    "InvalidParameterValue.InvalidParameterValueLimit": Outcome.INVALID_IMAGE,
    "LimitExceeded.TooLargeFileError": Outcome.INVALID_IMAGE,
    "RequestSizeLimitExceeded": Outcome.INVALID_IMAGE,
    "RequestLimitExceeded": Outcome.RATE_LIMITED,
    "RequestLimitExceeded.IPLimitExceeded": Outcome.RATE_LIMITED,
    "RequestLimitExceeded.UinLimitExceeded": Outcome.RATE_LIMITED,
    "RequestLimitExceeded.GlobalRegionUinLimitExceeded": Outcome.RATE_LIMITED,
    "InternalError": Outcome.TRANSIENT,
    "InternalError.SomethingNew": Outcome.TRANSIENT,
    "ServiceUnavailable": Outcome.TRANSIENT,
    "FailedOperation": Outcome.TRANSIENT,
    "FailedOperation.UnKnowError": Outcome.TRANSIENT,
    "FailedOperation.OcrFailed": Outcome.TRANSIENT,
    "FailedOperation.DownLoadError": Outcome.TRANSIENT,
    "FailedOperation.SomethingNew": Outcome.TRANSIENT,
    "ResourceInUse": Outcome.TRANSIENT,
    "ResourceInsufficient": Outcome.TRANSIENT,
    "ResponseSizeLimitExceeded": Outcome.TRANSIENT,
    "SomeUnknownCode": Outcome.TRANSIENT,
    "FailedOperation.UnOpenError": Outcome.PROVIDER_UNAVAILABLE,
    "ResourceUnavailable.InArrears": Outcome.PROVIDER_UNAVAILABLE,
    "ResourceUnavailable.ResourcePackageRunOut": Outcome.PROVIDER_UNAVAILABLE,
    "ResourcesSoldOut.ChargeStatusException": Outcome.PROVIDER_UNAVAILABLE,
    **{
        f"AuthFailure.{suffix}": Outcome.PROVIDER_UNAVAILABLE
        for suffix in (
            "InvalidAuthorization",
            "InvalidSecretId",
            "MFAFailure",
            "SecretIdNotFound",
            "SignatureExpire",
            "SignatureFailure",
            "TokenFailure",
            "UnauthorizedOperation",
            "SomethingNew",
        )
    },
    **{
        code: Outcome.PROVIDER_UNAVAILABLE
        for code in (
            "ActionOffline",
            "AuthFailure",
            "ResourcesSoldOut",
            "InvalidAction",
            "InvalidParameter",
            "InvalidParameterValue",
            "InvalidRequest",
            "IpInBlacklist",
            "IpNotInWhitelist",
            "LimitExceeded",
            "MissingParameter",
            "NoSuchProduct",
            "NoSuchVersion",
            "ResourceNotFound",
            "ResourceUnavailable",
            "UnauthorizedOperation",
            "UnknownParameter",
            "UnsupportedOperation",
            "UnsupportedProtocol",
            "UnsupportedRegion",
        )
    },
}


def _outcome(vendor: Vendor, code: str) -> tuple[Outcome, Any]:
    result: Any = vendor.result(
        {"Response": {"Error": {"Code": code, "Message": "m"}, "RequestId": "r-1"}}
    )
    return result.outcome, result


@pytest.mark.parametrize("code", sorted(CODES))
def test_error_code_table(vendor: Vendor, code: str) -> None:
    outcome, result = _outcome(vendor, code)
    assert outcome is CODES[code]
    assert result.vendor_code == code
    assert result.request_id == "r-1"
    assert result.billed is False
    if isinstance(result, JobError):
        assert result.http_status == 200
        assert result.provider == "tencent_vehicle_license"
        assert result.raw == {
            "Response": {"Error": {"Code": code, "Message": "m"}, "RequestId": "r-1"}
        }


def test_every_table_entry_is_tested_and_prefixes_resolve() -> None:
    exact = {code for code in ERRORS if not code.endswith(".")}
    assert exact <= set(CODES)
    assert classify("AuthFailure.Anything.Deeper") is ProviderUnavailable


def test_every_code_over_loopback(vendor: Vendor) -> None:
    async def scenario() -> list[tuple[str, Outcome]]:
        async with vendor.loopback(vendor.settings(throttle=False)) as lb:
            results = await asyncio.gather(*(lb.call(prepared({"error": c})) for c in CODES))
            return [(c, r.outcome) for c, r in zip(CODES, results, strict=True)]

    assert dict(asyncio.run(scenario())) == CODES


# --- the doc's examples, offline -----------------------------------------------------

DOC_FRONT = {
    "FrontInfo": {
        "PlateNo": "沪AA1234",
        "VehicleType": "小型轿车",
        "Owner": "李明",
        "Address": "上海市徐汇区田林路397号腾云大厦6F",
        "UseCharacter": "非营运",
        "Model": "别克牌SGM7151LAAA",
        "Vin": "ABCDEFGH123456789",
        "EngineNo": "8B54321",
        "RegisterDate": "2011-10-10",
        "IssueDate": "",
        "Seal": "上海市公安局交通警寨总队",
    },
    "BackInfo": None,
    "RecognizeWarnCode": [-9102],
    "RecognizeWarnMsg": ["WARN_DRIVER_LICENSE_COPY_CARD"],
    "RequestId": "820916b4-b391-40a8-9203-7ae87e3f1954",
}
DOC_BACK_INFO = {
    "PlateNo": "皖AC4L50",
    "FuelType": "",
    "FileNo": "A00-00476807",
    "AllowNum": "5人",
    "TotalMass": "1837kg",
    "CurbWeight": "1431kg",
    "LoadQuality": "--",
    "ExternalSize": "4620×1780×1498mm",
    "TotalQuasiMass": "--",
    "Marks": "",
    "Record": "检验有效期至2015年11月皖A(4S)",
    "SubPageCode": "",
}


def test_doc_example_1_front(vendor: Vendor) -> None:
    result = vendor.answer({"Response": DOC_FRONT})
    assert result.outcome is Outcome.SUCCEEDED
    assert result.billed
    assert result.request_id == "820916b4-b391-40a8-9203-7ae87e3f1954"
    assert result.warnings == ["WARN_DRIVER_LICENSE_COPY_CARD"]
    assert result.readings == [
        VehicleLicenseReading(
            side="FRONT",
            plate_no="沪AA1234",
            vehicle_type="小型轿车",
            owner="李明",
            address="上海市徐汇区田林路397号腾云大厦6F",
            use_character="非营运",
            model="别克牌SGM7151LAAA",
            vin="ABCDEFGH123456789",
            engine_no="8B54321",
            register_date=date(2011, 10, 10),
            issue_date=None,
            seal="上海市公安局交通警寨总队",
            warn_codes=[-9102],
            warn_msgs=["WARN_DRIVER_LICENSE_COPY_CARD"],
        )
    ]


@pytest.mark.parametrize(
    ("code", "msg"),
    [(-9102, "WARN_DRIVER_LICENSE_COPY_CARD"), (-9103, "WARN_DRIVER_LICENSE_SCREENED_CARD")],
)
def test_doc_examples_2_and_3_back(vendor: Vendor, code: int, msg: str) -> None:
    result = vendor.answer(
        {
            "Response": {
                "FrontInfo": None,
                "BackInfo": DOC_BACK_INFO,
                "RecognizeWarnCode": [code],
                "RecognizeWarnMsg": [msg],
                "RequestId": "e2ebfaa0-19d3-4d2b-9ed8-7c7c21eb2b74",
            }
        }
    )
    assert result.readings == [
        VehicleLicenseReading(
            side="BACK",
            plate_no="皖AC4L50",
            file_no="A00-00476807",
            allow_num="5人",
            total_mass="1837kg",
            curb_weight="1431kg",
            load_quality="--",
            external_size="4620×1780×1498mm",
            total_quasi_mass="--",
            marks=None,
            record="检验有效期至2015年11月皖A(4S)",
            fuel_type=None,
            sub_page_code=None,
            warn_codes=[code],
            warn_msgs=[msg],
        )
    ]


def test_dates_other_than_iso_are_none(vendor: Vendor) -> None:
    info = dict(DOC_FRONT["FrontInfo"], RegisterDate="2011年10月10日", IssueDate="2011-13-40")  # type: ignore[arg-type]
    reading = vendor.answer({"Response": dict(DOC_FRONT, FrontInfo=info)}).readings[0]
    assert isinstance(reading, VehicleLicenseReading)
    assert reading.register_date is None
    assert reading.issue_date is None


def test_warn_codes_that_are_not_integers_are_skipped(vendor: Vendor) -> None:
    result = vendor.answer(
        {"Response": dict(DOC_FRONT, RecognizeWarnCode=["WARN", True, 1.5, "-9102"])}
    )
    reading = result.readings[0]
    assert isinstance(reading, VehicleLicenseReading)
    assert reading.warn_codes == [-9102]


def test_no_side_read_is_no_result(vendor: Vendor) -> None:
    result = vendor.answer({"Response": {"FrontInfo": None, "BackInfo": None, "RequestId": "x"}})
    assert result.outcome is Outcome.NO_RESULT


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        *NON_200_ANSWERS,
        (200, b"<html>", BadResponse),
        (200, b'{"Result": {}}', BadResponse),
        (200, b"[1, 2]", BadResponse),
        (200, b'{"Response": {"Error": {"Message": "no code"}}}', BadResponse),
    ],
)
def test_bad_answers(vendor: Vendor, status: int, body: bytes, error: type[JobError]) -> None:
    with pytest.raises(error) as caught:
        vendor.answer(body, status)
    assert caught.value.http_status == status


def test_raw_has_no_credential_like_keys(vendor: Vendor) -> None:
    result = vendor.answer(
        {"Response": dict(DOC_FRONT, Token="t", Extra={"SecretKey": "s", "keep": 1})}
    )
    assert "Token" not in result.raw["Response"]
    assert result.raw["Response"]["Extra"] == {"keep": 1}


# --- requests and secrets ------------------------------------------------------------


def test_request_shape(vendor: Vendor) -> None:
    request = vendor.adapter().build_request(prepared(), {"card_side": "back"})
    assert request.method == "POST"
    assert request.url == "https://ocr.tencentcloudapi.com/"
    assert json.loads(request.body or b"")["CardSide"] == "BACK"
    assert request.headers["Host"] == "ocr.tencentcloudapi.com"
    assert request.headers["X-TC-Action"] == "VehicleLicenseOCR"
    assert request.headers["X-TC-Version"] == "2018-11-19"
    assert request.headers["X-TC-Region"] == "ap-guangzhou"
    assert request.headers["Authorization"].startswith(f"TC3-HMAC-SHA256 Credential={SECRET_ID}/")


def test_missing_credentials_and_bad_options(vendor: Vendor) -> None:
    for settings in (vendor.settings(secret_key=None), vendor.settings(secret_id=None)):
        with pytest.raises(ConfigError, match=r"SECRET_ID and .*SECRET_KEY"):
            vendor.adapter(settings).build_request(prepared(), {})
    with pytest.raises(ConfigError, match="card_side"):
        vendor.adapter().build_request(prepared(), {"card_side": "TOP"})


def test_secret_key_never_leaks(vendor: Vendor) -> None:
    texts: list[str] = []
    request = vendor.adapter().build_request(prepared(), {})
    texts += [*request.headers.values(), (request.body or b"").decode(), repr(request)]
    texts += [repr(vendor.block()), str(vendor.block()), vendor.adapter().credential_id()]

    async def scenario() -> list[Any]:
        async with vendor.loopback() as lb:
            calls = _auth_failures(lb) + [lb.call(prepared({"error": c})) for c in list(CODES)[:12]]
            return list(await asyncio.gather(*calls))

    for result in asyncio.run(scenario()):
        texts += [str(result), repr(result), json.dumps(result.raw, ensure_ascii=False)]
        if isinstance(result, JobError):
            texts += [result.message, repr(result.args)]
    try:
        vendor.adapter(secret_id=None).build_request(prepared(), {})
    except ConfigError as exc:
        texts.append(str(exc))
    assert texts
    assert not [t for t in texts if SECRET_KEY in t]
