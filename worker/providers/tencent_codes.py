"""Tencent Cloud error codes for ``VehicleLicenseOCR`` -> one vrec outcome each.

Where the codes come from: the error-code table of the VehicleLicenseOCR doc (API
version 2018-11-19), plus the Tencent Cloud API 3.0 common error codes that any action
may answer. Used by :mod:`worker.providers.tencent_vehicle_license`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from worker import errors
from worker.providers.common import NO_RESULT, NoResult

# Every Tencent error code -> one outcome. A key ending in "." is a prefix: a code missing
# from the table falls back to its longest listed dotted prefix, then to errors.Transient.
ERRORS: Final[Mapping[str, type[errors.JobError] | NoResult]] = {
    # The doc's own table (VehicleLicenseOCR).
    "FailedOperation.NoVehicleLicenseError": NO_RESULT,  # looked, not a licence
    "FailedOperation.ImageNoText": NO_RESULT,
    "FailedOperation.EmptyImageError": errors.VendorRejectedImage,
    "FailedOperation.ImageBlur": errors.VendorRejectedImage,  # the same bytes stay blurred
    "FailedOperation.ImageDecodeFailed": errors.VendorRejectedImage,
    "FailedOperation.ImageSizeTooLarge": errors.VendorRejectedImage,
    # CardSide contradicts the image: the job's option is wrong for this image; terminal.
    "FailedOperation.LicenseCardSideError": errors.VendorRejectedImage,
    "FailedOperation.LicenseMultiCardError": errors.VendorRejectedImage,
    "FailedOperation.DownLoadError": errors.Transient,  # only for ImageUrl, which we don't send
    "FailedOperation.OcrFailed": errors.ServerError,
    "FailedOperation.UnKnowError": errors.ServerError,
    "FailedOperation.UnOpenError": errors.ProviderUnavailable,  # service not enabled on the account
    "InvalidParameter.EngineImageDecodeFailed": errors.VendorRejectedImage,
    # Tencent answers this for out-of-range image parameters (size, ratio): the image's fault.
    "InvalidParameterValue.InvalidParameterValueLimit": errors.VendorRejectedImage,
    "LimitExceeded.TooLargeFileError": errors.VendorRejectedImage,
    "ResourceUnavailable.InArrears": errors.ProviderUnavailable,
    "ResourceUnavailable.ResourcePackageRunOut": errors.ProviderUnavailable,
    "ResourcesSoldOut.ChargeStatusException": errors.ProviderUnavailable,
    # Tencent Cloud API 3.0 common codes.
    "AuthFailure": errors.ProviderUnavailable,
    "AuthFailure.": errors.ProviderUnavailable,
    # InvalidAuthorization, InvalidSecretId, MFAFailure, SecretIdNotFound, SignatureFailure,
    # TokenFailure, UnauthorizedOperation and
    # SignatureExpire (our clock is off by > 5 min: retrying cannot help until it is fixed).
    "ActionOffline": errors.ProviderUnavailable,
    "FailedOperation": errors.ServerError,
    "FailedOperation.": errors.Transient,
    "InternalError": errors.ServerError,
    "InternalError.": errors.ServerError,
    "InvalidAction": errors.ProviderUnavailable,
    # Parameter errors other than the image ones above mean our request is wrong: every
    # call would fail the same way, so stop calling until the code is fixed.
    "InvalidParameter": errors.ProviderUnavailable,
    "InvalidParameter.": errors.ProviderUnavailable,
    "InvalidParameterValue": errors.ProviderUnavailable,
    "InvalidParameterValue.": errors.ProviderUnavailable,
    "InvalidRequest": errors.ProviderUnavailable,
    "IpInBlacklist": errors.ProviderUnavailable,
    "IpNotInWhitelist": errors.ProviderUnavailable,
    "LimitExceeded": errors.ProviderUnavailable,  # a quota, not a per-second limit
    "LimitExceeded.": errors.ProviderUnavailable,
    "MissingParameter": errors.ProviderUnavailable,
    "NoSuchProduct": errors.ProviderUnavailable,
    "NoSuchVersion": errors.ProviderUnavailable,
    "RequestLimitExceeded": errors.RateLimited,
    "RequestLimitExceeded.": errors.RateLimited,
    "RequestLimitExceeded.GlobalRegionUinLimitExceeded": errors.RateLimited,
    "RequestLimitExceeded.IPLimitExceeded": errors.RateLimited,
    "RequestLimitExceeded.UinLimitExceeded": errors.RateLimited,
    "RequestSizeLimitExceeded": errors.VendorRejectedImage,  # the body is essentially the image
    "ResourceInUse": errors.Transient,
    "ResourceInsufficient": errors.Transient,
    "ResourceNotFound": errors.ProviderUnavailable,
    "ResourceUnavailable": errors.ProviderUnavailable,
    "ResourceUnavailable.": errors.ProviderUnavailable,
    "ResourcesSoldOut": errors.ProviderUnavailable,
    "ResourcesSoldOut.": errors.ProviderUnavailable,
    # Deterministic, but not the image's fault: retry up to the attempt cap, keep the code.
    "ResponseSizeLimitExceeded": errors.Transient,
    "ServiceUnavailable": errors.ServerError,
    "UnauthorizedOperation": errors.ProviderUnavailable,
    "UnauthorizedOperation.": errors.ProviderUnavailable,
    "UnknownParameter": errors.ProviderUnavailable,
    "UnsupportedOperation": errors.ProviderUnavailable,
    "UnsupportedOperation.": errors.ProviderUnavailable,
    "UnsupportedProtocol": errors.ProviderUnavailable,
    "UnsupportedRegion": errors.ProviderUnavailable,
}


def classify(code: str) -> type[errors.JobError] | NoResult:
    """The outcome of a Tencent error code: exact, then longest dotted prefix, else Transient."""
    if code in ERRORS:
        return ERRORS[code]
    parts = code.split(".")
    for end in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:end]) + "."
        if prefix in ERRORS:
            return ERRORS[prefix]
    return errors.Transient
