"""Tencent Cloud error codes for ``VehicleLicenseOCR`` -> one vrec outcome each.

Where the codes come from: the error-code table of the VehicleLicenseOCR doc (API
version 2018-11-19), plus the Tencent Cloud API 3.0 common error codes that any action
may answer. Used by :mod:`worker.providers.tencent_vehicle_license`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from worker.errors import (
    JobError,
    ProviderUnavailable,
    RateLimited,
    ServerError,
    Transient,
    VendorRejectedImage,
)
from worker.providers.common import NO_RESULT, NoResult

# Every Tencent error code -> one outcome. A key ending in "." is a prefix: a code missing
# from the table falls back to its longest listed dotted prefix, then to Transient.
ERRORS: Final[Mapping[str, type[JobError] | NoResult]] = {
    # The doc's own table (VehicleLicenseOCR).
    "FailedOperation.NoVehicleLicenseError": NO_RESULT,  # looked, not a licence
    "FailedOperation.ImageNoText": NO_RESULT,
    "FailedOperation.EmptyImageError": VendorRejectedImage,
    "FailedOperation.ImageBlur": VendorRejectedImage,  # the same bytes stay blurred
    "FailedOperation.ImageDecodeFailed": VendorRejectedImage,
    "FailedOperation.ImageSizeTooLarge": VendorRejectedImage,
    # CardSide contradicts the image: the job's option is wrong for this image; terminal.
    "FailedOperation.LicenseCardSideError": VendorRejectedImage,
    "FailedOperation.LicenseMultiCardError": VendorRejectedImage,
    "FailedOperation.DownLoadError": Transient,  # only for ImageUrl, which we don't send
    "FailedOperation.OcrFailed": ServerError,
    "FailedOperation.UnKnowError": ServerError,
    "FailedOperation.UnOpenError": ProviderUnavailable,  # service not enabled on the account
    "InvalidParameter.EngineImageDecodeFailed": VendorRejectedImage,
    # Tencent answers this for out-of-range image parameters (size, ratio): the image's fault.
    "InvalidParameterValue.InvalidParameterValueLimit": VendorRejectedImage,
    "LimitExceeded.TooLargeFileError": VendorRejectedImage,
    "ResourceUnavailable.InArrears": ProviderUnavailable,
    "ResourceUnavailable.ResourcePackageRunOut": ProviderUnavailable,
    "ResourcesSoldOut.ChargeStatusException": ProviderUnavailable,
    # Tencent Cloud API 3.0 common codes.
    "AuthFailure": ProviderUnavailable,
    "AuthFailure.": ProviderUnavailable,  # InvalidAuthorization, InvalidSecretId, MFAFailure,
    # SecretIdNotFound, SignatureFailure, TokenFailure, UnauthorizedOperation and
    # SignatureExpire (our clock is off by > 5 min: retrying cannot help until it is fixed).
    "ActionOffline": ProviderUnavailable,
    "FailedOperation": ServerError,
    "FailedOperation.": Transient,
    "InternalError": ServerError,
    "InternalError.": ServerError,
    "InvalidAction": ProviderUnavailable,
    # Parameter errors other than the image ones above mean our request is wrong: every
    # call would fail the same way, so stop calling until the code is fixed.
    "InvalidParameter": ProviderUnavailable,
    "InvalidParameter.": ProviderUnavailable,
    "InvalidParameterValue": ProviderUnavailable,
    "InvalidParameterValue.": ProviderUnavailable,
    "InvalidRequest": ProviderUnavailable,
    "IpInBlacklist": ProviderUnavailable,
    "IpNotInWhitelist": ProviderUnavailable,
    "LimitExceeded": ProviderUnavailable,  # a quota, not a per-second limit
    "LimitExceeded.": ProviderUnavailable,
    "MissingParameter": ProviderUnavailable,
    "NoSuchProduct": ProviderUnavailable,
    "NoSuchVersion": ProviderUnavailable,
    "RequestLimitExceeded": RateLimited,
    "RequestLimitExceeded.": RateLimited,
    "RequestLimitExceeded.GlobalRegionUinLimitExceeded": RateLimited,
    "RequestLimitExceeded.IPLimitExceeded": RateLimited,
    "RequestLimitExceeded.UinLimitExceeded": RateLimited,
    "RequestSizeLimitExceeded": VendorRejectedImage,  # the body is essentially the image
    "ResourceInUse": Transient,
    "ResourceInsufficient": Transient,
    "ResourceNotFound": ProviderUnavailable,
    "ResourceUnavailable": ProviderUnavailable,
    "ResourceUnavailable.": ProviderUnavailable,
    "ResourcesSoldOut": ProviderUnavailable,
    "ResourcesSoldOut.": ProviderUnavailable,
    # Deterministic, but not the image's fault: retry up to the attempt cap, keep the code.
    "ResponseSizeLimitExceeded": Transient,
    "ServiceUnavailable": ServerError,
    "UnauthorizedOperation": ProviderUnavailable,
    "UnauthorizedOperation.": ProviderUnavailable,
    "UnknownParameter": ProviderUnavailable,
    "UnsupportedOperation": ProviderUnavailable,
    "UnsupportedOperation.": ProviderUnavailable,
    "UnsupportedProtocol": ProviderUnavailable,
    "UnsupportedRegion": ProviderUnavailable,
}


def classify(code: str) -> type[JobError] | NoResult:
    """The outcome of a Tencent error code: exact, then longest dotted prefix, else Transient."""
    if code in ERRORS:
        return ERRORS[code]
    parts = code.split(".")
    for end in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:end]) + "."
        if prefix in ERRORS:
            return ERRORS[prefix]
    return Transient
