"""The helpers every adapter shares (worker.providers.common)."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import SecretStr

from worker.errors import (
    BadResponse,
    JobError,
    ProviderUnavailable,
    RateLimited,
    ServerError,
    VendorRejectedImage,
)
from worker.providers.aliyun_codes import classify_gateway
from worker.providers.common import (
    credential_id,
    decode_json,
    http_status_error,
    int_of,
    json_object,
    strip_secrets,
    text,
)


def test_strip_secrets_drops_credential_like_keys() -> None:
    answer = {
        "Key": 1,
        "appKey": 2,
        "api_key": 3,
        "SecretId": 4,
        "x_token": 5,
        "Authorization": 6,
        "Signature": 7,
        "password": 8,
        "AppCode": 9,
        "result": [{"msg": "bad k1 and k2", "n": 1}, "k1"],
        "keep": None,
    }
    assert strip_secrets(answer) == {
        "result": [{"msg": "bad k1 and k2", "n": 1}, "k1"],  # values: worker.redaction's
        "keep": None,
    }
    assert strip_secrets([[{"token": 1}], ["k1"]]) == [[{}], ["k1"]]


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, ServerError),
        (503, ServerError),
        (429, RateLimited),
        (413, VendorRejectedImage),
        (401, ProviderUnavailable),
        (403, ProviderUnavailable),
        (404, ProviderUnavailable),
        (405, ProviderUnavailable),
        (400, BadResponse),
        (302, BadResponse),
    ],
)
def test_http_status_error(status: int, kind: type[JobError]) -> None:
    error = http_status_error(status, "p")
    assert type(error) is kind
    assert (error.message, error.provider, error.http_status) == (f"HTTP {status}", "p", status)


def test_aliyun_gateway_status_keeps_its_one_difference() -> None:
    # An unknown code the gateway named on any other 4xx refuses our request: stop calling.
    for status in range(300, 600):
        plain = type(http_status_error(status, "p"))
        assert classify_gateway(status, "") is plain
        refused = plain is BadResponse and 400 <= status < 500
        assert classify_gateway(status, "Some New Error") is (
            ProviderUnavailable if refused else plain
        )


def test_json_readers() -> None:
    assert decode_json(b"[1]", "p", 200) == [1]
    assert json_object(b'{"a": "x\ny"}', "p", 200, strict=False) == {"a": "x\ny"}
    with pytest.raises(BadResponse, match="answer is not JSON"):
        json_object(b'{"a": "x\ny"}', "p", 200)
    with pytest.raises(BadResponse, match="answer is not JSON"):
        decode_json(b"\xff", "p", 200)
    with pytest.raises(BadResponse, match="answer is not a JSON object"):
        json_object(b"[]", "p", 200)


def test_value_readers() -> None:
    assert [text(v) for v in (None, "", "  ", " a ", 0)] == [None, None, None, "a", "0"]
    values = (1, -2, "3", " -4 ", True, "x", "", "--1", "²", 1.0, None)
    assert [int_of(v) for v in values] == [1, -2, 3, -4, None, None, None, None, None, None, None]


def test_credential_id() -> None:
    cred = credential_id(SecretStr("k"))
    assert cred == "sha256:" + hashlib.sha256(b"k").hexdigest()[:12]
    assert credential_id(SecretStr("k")) == cred != credential_id(SecretStr("k2"))
    assert credential_id(None) == credential_id(SecretStr("")) == "unset"
