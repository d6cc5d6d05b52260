"""Provider adapters with a fault nobody foresaw, for tests that check every job still
ends with a reason: Tencent's real adapter with one part broken."""

from __future__ import annotations

from typing import Any

from worker.errors import RateLimited
from worker.image_limits import PreparedImage
from worker.providers.base import VendorAnswer, VendorRequest, VendorResponse
from worker.providers.tencent_vehicle_license import TencentVehicleLicense


class BuildFails(TencentVehicleLicense):
    def build_request(self, image: PreparedImage, options: Any) -> VendorRequest:
        raise KeyError("SecretId")  # a stub's lookup failing, not an Exception we raise


class InjectsHeader(TencentVehicleLicense):
    """A request aiohttp refuses to send (a header with CR LF): a ValueError inside send."""

    def build_request(self, image: PreparedImage, options: Any) -> VendorRequest:
        request = super().build_request(image, options)
        headers = {**request.headers, "X-Note": "a\r\nInjected: yes"}
        return VendorRequest(request.method, request.url, headers, request.body)


class ParseFails(TencentVehicleLicense):
    def parse_response(self, response: VendorResponse) -> VendorAnswer:
        raise KeyError("Response")


class Throttled(TencentVehicleLicense):
    def parse_response(self, response: VendorResponse) -> VendorAnswer:
        raise RateLimited("slow down", vendor_code="RequestLimitExceeded")
