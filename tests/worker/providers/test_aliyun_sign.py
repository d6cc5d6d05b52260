"""The Aliyun API Gateway digest signer against published vectors and a hand-built one."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict

from worker.providers import aliyun_sign
from worker.providers.aliyun_plate import ACCEPT, CONTENT_TYPE

# Aliyun's doc "使用摘要签名认证方式调用API", section 签名串提取示例: request and the string
# it gives as "生成的正确签名串" (no secret is published with it, so the string only).
DOC_STRING_TO_SIGN = (
    "POST\n"
    "application/json; charset=utf-8\n"
    "\n"
    "application/x-www-form-urlencoded; charset=utf-8\n"
    "Wed, 09 May 2018 13:30:29 GMT+00:00\n"
    "x-ca-key:203753385\n"
    "x-ca-nonce:c9f15cbf-f4ac-4a6c-b54d-f51abf4b5b44\n"
    "x-ca-signature-method:HmacSHA256\n"
    "x-ca-timestamp:1525872629832\n"
    "/http2test/test?param1=test&password=123456789&username=xiaoming"
)


def test_doc_example_string_to_sign() -> None:
    to_sign = aliyun_sign.string_to_sign(
        method="post",
        accept="application/json; charset=utf-8",
        content_type="application/x-www-form-urlencoded; charset=utf-8",
        date="Wed, 09 May 2018 13:30:29 GMT+00:00",
        headers={
            "x-ca-timestamp": "1525872629832",
            "x-ca-key": "203753385",
            "x-ca-nonce": "c9f15cbf-f4ac-4a6c-b54d-f51abf4b5b44",
            "x-ca-signature-method": "HmacSHA256",
        },
        path="/http2test/test",
        query="param1=test",
        form={"username": "xiaoming", "password": b"123456789"},
    )
    assert to_sign.decode() == DOC_STRING_TO_SIGN


# Signatures asserted by alibaba/higress plugins/wasm-cpp/extensions/hmac_auth/plugin_test.cc
# (key "appKey", secret "appSecret"), verified there by a gateway-compatible checker.
HIGRESS = "appSecret"


def test_higress_vector_form_body() -> None:
    to_sign = aliyun_sign.string_to_sign(
        method="POST",
        accept="application/json",
        content_type="application/x-www-form-urlencoded",
        headers={
            "x-ca-key": "appKey",
            "x-ca-nonce": "ca5a6753-b76c-4fff-a9d9-e5bb643e8cdf",
            "x-ca-timestamp": "1646646682418",
        },
        path="/Third/User/getNyAccessToken",
        form={"nickname": "nickname", "room_id": "6893", "uuid": "uuid", "photo": "photo"},
    )
    assert to_sign.endswith(
        b"\n/Third/User/getNyAccessToken?nickname=nickname&photo=photo&room_id=6893&uuid=uuid"
    )
    assert aliyun_sign.signature(HIGRESS, to_sign) == "gmf9xq0hc95Hmt+7G+OocS009ka3v1v0rvfshKzYc3w="


def test_higress_vector_get_with_headers() -> None:
    to_sign = aliyun_sign.string_to_sign(
        method="GET",
        accept="application/json",
        content_type="application/json",
        headers={
            "x-ca-key": "appKey",
            "x-ca-nonce": "787dd0c2-7bd8-41cd-9c19-62c05ea524a2",
            "x-ca-timestamp": "1646365291734",
        },
        path="/Third/Tools/checkSign",
    )
    assert aliyun_sign.signature(HIGRESS, to_sign) == "EdJSFAMOWyXZOpXhevZnjuS0ZafnwnCqaSk5hz+tXo8="


def test_higress_vector_no_signed_headers() -> None:
    to_sign = aliyun_sign.string_to_sign(
        method="GET", accept="application/json", path="/Third/Tools/checkSign"
    )
    assert to_sign == b"GET\napplication/json\n\n\n\n/Third/Tools/checkSign"
    assert aliyun_sign.signature(HIGRESS, to_sign) == "ZpJhkHdtjLTJiR6CJWHL8ikLtPB2z6CoztG21wG3PT4="


# Our own request, built by hand; the signature computed independently with
#   printf '<string>' | openssl dgst -sha256 -hmac 'vrec-test-app-secret' -binary | base64
OURS = (
    "POST\n"
    "application/json\n"
    "\n"
    "application/x-www-form-urlencoded; charset=UTF-8\n"
    "\n"
    "x-ca-key:204567890\n"
    "x-ca-nonce:0f7c4d1e-2b3a-4c5d-8e9f-a1b2c3d4e5f6\n"
    "x-ca-signature-method:HmacSHA256\n"
    "x-ca-timestamp:1700000000000\n"
    "/ocrCars?img_base64=iVBORw0KGgo+/w=="
)
OURS_SIGNATURE = "w4moWm04QTkRyE0X5bd8nK4RANqNPG0u2ViXiwHZ65w="


def test_hand_built_vector_for_our_request() -> None:
    signed = aliyun_sign.sign(
        app_key="204567890",
        app_secret="vrec-test-app-secret",
        method="POST",
        path="/ocrCars",
        accept=ACCEPT,
        content_type=CONTENT_TYPE,
        form={"img_base64": b"iVBORw0KGgo+/w=="},  # raw base64, not form-encoded
        timestamp_ms=1_700_000_000_000,
        nonce="0f7c4d1e-2b3a-4c5d-8e9f-a1b2c3d4e5f6",
    )
    assert signed.string_to_sign.decode() == OURS
    assert signed.signature == OURS_SIGNATURE
    assert signed.headers == {
        "x-ca-key": "204567890",
        "x-ca-nonce": "0f7c4d1e-2b3a-4c5d-8e9f-a1b2c3d4e5f6",
        "x-ca-signature-method": "HmacSHA256",
        "x-ca-timestamp": "1700000000000",
        "x-ca-signature-headers": "x-ca-key,x-ca-nonce,x-ca-signature-method,x-ca-timestamp",
        "x-ca-signature": OURS_SIGNATURE,
    }
    assert "vrec-test-app-secret" not in repr(signed)


def _received(headers: dict[str, str]) -> CIMultiDict[str]:
    received = CIMultiDict(headers)
    received["Accept"] = ACCEPT
    received["Content-Type"] = CONTENT_TYPE
    return received


def test_verifier_recomputes_what_was_signed() -> None:
    form = {"img_base64": b"iVBORw0KGgo+/w=="}
    signed = aliyun_sign.sign(
        app_key="k",
        app_secret="s",
        method="POST",
        path="/ocrCars",
        accept=ACCEPT,
        content_type=CONTENT_TYPE,
        form=form,
        timestamp_ms=1,
        nonce="n",
    )
    kwargs = {"method": "POST", "path": "/ocrCars", "query": ""}
    again = aliyun_sign.string_to_sign_of(headers=_received(signed.headers), form=form, **kwargs)
    assert again == signed.string_to_sign
    tampered = {"img_base64": b"iVBORw0KGgo+/w=x"}
    other = aliyun_sign.string_to_sign_of(
        headers=_received(signed.headers), form=tampered, **kwargs
    )
    assert aliyun_sign.signature("s", other) != signed.signature


def test_verifier_signs_names_as_listed() -> None:
    """The Java demo lists X-Ca-* names in their original case; they are signed as listed."""
    headers = _received(
        {
            "X-Ca-Key": "k",
            "X-Ca-Timestamp": "5",
            "X-Ca-Signature-Headers": "X-Ca-Timestamp,X-Ca-Key,X-Ca-Signature",
        }
    )
    to_sign = aliyun_sign.string_to_sign_of(
        method="POST", headers=headers, path="/p", query="", form=None
    )
    assert to_sign.endswith(b"\nX-Ca-Key:k\nX-Ca-Timestamp:5\n/p")


def test_headers_the_doc_excludes_are_never_in_the_headers_block() -> None:
    """ "以下参数不参与Headers签名计算: X-Ca-Signature、X-Ca-Signature-Headers、Accept、
    Content-MD5、Content-Type、Date": listed or not, they are signed in their own lines."""
    listed = "x-ca-key,Accept,content-type,Content-MD5,date,x-ca-signature"
    headers = _received({"x-ca-key": "k", "X-Ca-Signature-Headers": listed, "Date": "d"})
    to_sign = aliyun_sign.string_to_sign_of(
        method="POST", headers=headers, path="/p", query="", form=None
    )
    assert to_sign == f"POST\n{ACCEPT}\n\n{CONTENT_TYPE}\nd\nx-ca-key:k\n/p".encode()


@pytest.mark.parametrize(
    ("query", "form", "expected"),
    [
        ("", None, b"/p"),
        ("", {}, b"/p"),
        ("b=2&a=1", None, b"/p?a=1&b=2"),
        ("a=1&a=2", None, b"/p?a=1"),  # the first of repeated keys
        ("a=q", {"a": "f"}, b"/p?a=f"),  # a form value wins over the query's
        ("a=&b", {"c": " ", "d": b""}, b"/p?a&b&c&d"),  # blank values: key only
        ("", {"k": "中文"}, "/p?k=中文".encode()),  # raw UTF-8, never URL-encoded
        # A query is percent-decoded first: signed as its raw values ("原文签名").
        ("k=%E4%B8%AD%E6%96%87", None, "/p?k=中文".encode()),
        ("a%20b=x%2By&c=1+2", None, b"/p?a b=x+y&c=1+2"),  # "+" stays "+"
        ("blank=%20%20&tab=%09", None, b"/p?blank&tab"),  # whitespace only: key alone
    ],
)
def test_path_and_parameters(
    query: str, form: dict[str, str | bytes] | None, expected: bytes
) -> None:
    assert aliyun_sign.path_and_parameters("/p", query, form) == expected


def test_str_and_bytes_values_sign_alike() -> None:
    common: dict[str, Any] = {"method": "POST", "path": "/ocrCars"}
    as_str = aliyun_sign.string_to_sign(form={"img_base64": "QUJD+/=="}, **common)
    as_bytes = aliyun_sign.string_to_sign(form={"img_base64": b"QUJD+/=="}, **common)
    assert as_str == as_bytes


def test_hmac_sha1_for_verification() -> None:
    assert aliyun_sign.signature("s", b"x", "HmacSHA1") != aliyun_sign.signature("s", b"x")
