"""TC3-HMAC-SHA256: Tencent's worked example, and the official SDK's signer as an oracle."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pydantic import SecretStr
from tencentcloud.common import abstract_client
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.credential import Credential
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from worker.image_limits import PreparedImage
from worker.providers import tencent_sign
from worker.providers.tencent_vehicle_license import (
    CONTENT_TYPE,
    TencentVehicleLicense,
    TencentVehicleLicenseSettings,
)

# The example of Tencent's "signature v3" page (English edition; the Chinese one masks it).
DOC_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
DOC_KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
DOC_PAYLOAD = (
    b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)
DOC_TIMESTAMP = 1551113065


def test_doc_worked_example() -> None:
    signed = tencent_sign.sign(
        secret_id=DOC_ID,
        secret_key=DOC_KEY,
        service="cvm",
        timestamp=DOC_TIMESTAMP,
        headers=(
            ("Content-Type", "application/json; charset=utf-8"),
            ("Host", "cvm.tencentcloudapi.com"),
        ),
        payload=DOC_PAYLOAD,
    )
    assert tencent_sign.sha256_hex(DOC_PAYLOAD) == (
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    assert signed.canonical_request == (
        "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n"
        "\ncontent-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    assert signed.string_to_sign == (
        "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    assert signed.signature == "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    assert signed.authorization == (
        f"TC3-HMAC-SHA256 Credential={DOC_ID}/2019-02-25/cvm/tc3_request, "
        "SignedHeaders=content-type;host, "
        "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )


def test_date_is_utc_not_local() -> None:
    # 1551113065 is 2019-02-26 00:44:25 in UTC+8 but still the 25th in UTC.
    assert tencent_sign.utc_date(DOC_TIMESTAMP) == "2019-02-25"


def sdk_sign(
    monkeypatch: pytest.MonkeyPatch, params: dict[str, Any], *, timestamp: int, host: str
) -> RequestInternal:
    """Let the official SDK sign a VehicleLicenseOCR request at a fixed time."""
    monkeypatch.setattr(abstract_client.time, "time", lambda: float(timestamp))
    # The SDK sends "application/json"; Tencent's doc and vrec send the charset too.
    monkeypatch.setattr(abstract_client, "_json_content", CONTENT_TYPE)
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=host))
    client = CommonClient("ocr", "2018-11-19", Credential(DOC_ID, DOC_KEY), "ap-guangzhou", profile)
    req = RequestInternal(host, "POST", "/")
    client._build_req_with_tc3_signature("VehicleLicenseOCR", params, req)
    return req


@pytest.mark.parametrize("card_side", ["FRONT", "BACK", "DOUBLE"])
def test_adapter_matches_sdk_byte_for_byte(monkeypatch: pytest.MonkeyPatch, card_side: str) -> None:
    data = bytes(range(256)) * 40
    b64 = base64.b64encode(data)
    timestamp = 1_700_000_123
    req = sdk_sign(
        monkeypatch,
        {"ImageBase64": b64.decode(), "CardSide": card_side},
        timestamp=timestamp,
        host="ocr.tencentcloudapi.com",
    )
    settings = TencentVehicleLicenseSettings(
        secret_id=SecretStr(DOC_ID), secret_key=SecretStr(DOC_KEY), region="ap-guangzhou"
    )
    adapter = TencentVehicleLicense(settings, clock=lambda: timestamp + 0.9)
    image = PreparedImage(data, b64, "JPEG", 600, 900, transformed=False)
    ours = adapter.build_request(image, {"card_side": card_side})

    assert ours.body == req.data.encode()  # our hand-built JSON is json.dumps' layout
    assert json.loads(ours.body or b"") == {"ImageBase64": b64.decode(), "CardSide": card_side}
    assert ours.headers["Authorization"] == req.header["Authorization"]
    for name in (
        "Content-Type",
        "Host",
        "X-TC-Action",
        "X-TC-Version",
        "X-TC-Region",
        "X-TC-Timestamp",
    ):
        assert ours.headers[name] == req.header[name], name


def test_signer_matches_sdk_for_unicode_payload(monkeypatch: pytest.MonkeyPatch) -> None:
    params = {"ImageUrl": "https://example.com/粤B.jpg", "CardSide": "BACK"}
    req = sdk_sign(monkeypatch, params, timestamp=DOC_TIMESTAMP, host="127.0.0.1:8900")
    signed = tencent_sign.sign(
        secret_id=DOC_ID,
        secret_key=DOC_KEY,
        service="ocr",
        timestamp=DOC_TIMESTAMP,
        headers=(("Content-Type", CONTENT_TYPE), ("Host", "127.0.0.1:8900")),
        payload=req.data.encode(),
    )
    assert signed.authorization == req.header["Authorization"]


def test_parse_authorization_round_trip() -> None:
    signed = tencent_sign.sign(
        secret_id=DOC_ID,
        secret_key=DOC_KEY,
        service="ocr",
        timestamp=DOC_TIMESTAMP,
        headers=(("Content-Type", CONTENT_TYPE), ("Host", "h")),
        payload=b"{}",
    )
    parsed = tencent_sign.parse_authorization(signed.authorization)
    assert parsed == tencent_sign.Authorization(
        DOC_ID, "2019-02-25", "ocr", ("content-type", "host"), signed.signature
    )
    assert tencent_sign.parse_authorization("Bearer abc") is None
    assert tencent_sign.parse_authorization(signed.authorization.replace("TC3-", "TC4-")) is None
