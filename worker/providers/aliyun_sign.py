"""Aliyun API Gateway digest signature ("摘要签名", AppKey + AppSecret, HmacSHA256).

Shared by the adapter (which signs) and the simulator (which verifies), so both sides
build the very same string. Followed, in this order of authority:

* Aliyun's doc "使用摘要签名认证方式调用API" (help.aliyun.com/document_detail/29475.html)
  and "签名机制" (help.aliyun.com/document_detail/143207.html);
* the official demos it links, aliyun/api-gateway-demo-sign-java ``SignUtil.java``
  (``buildStringToSign``/``buildResource``/``buildHeaders``) and
  aliyun/api-gateway-demo-sign-python ``signature_composer.py``;
* the doc's worked example and the signatures asserted in alibaba/higress
  ``plugins/wasm-cpp/extensions/hmac_auth/plugin_test.cc`` (a gateway-compatible
  verifier), which tests/worker/providers/test_aliyun_sign.py reproduces byte for byte.

The string to sign::

    HTTPMethod \\n Accept \\n Content-MD5 \\n Content-Type \\n Date \\n
    Headers                     "name:value\\n" per signed header, sorted by name
    PathAndParameters           path, then "?" and the query + form parameters sorted by
                                key as "k=v" joined by "&" ("k" alone when v is blank)

* Empty Accept/Content-MD5/Content-Type/Date still get their ``\\n``; Headers adds nothing
  when empty. Content-MD5 is computed only for non-form bodies, so a form POST leaves it
  empty.
* Signed headers are the ``X-Ca-*`` ones except ``X-Ca-Signature`` and
  ``X-Ca-Signature-Headers``; their names, comma-joined, go into ``X-Ca-Signature-Headers``
  and the verifier signs exactly the names listed there, as spelled there, except the
  ones the doc excludes from the Headers block ("以下参数不参与Headers签名计算:
  X-Ca-Signature、X-Ca-Signature-Headers、Accept、Content-MD5、Content-Type、Date": they
  are signed in their own lines already). We send them lower-case, as in the doc's example.
* Parameter values are the raw values ("参与签名时，必须使用原文签名"): a query string
  is percent-decoded first (``%E4%B8%AD`` is signed as 中, ``%20`` as a space; ``+`` stays
  ``+``, as the gateway-compatible verifier decodes), whether it comes from a base URL or
  from a request line; a form value wins over a query value of the same key; the first
  of repeated keys counts. A value that is empty or only whitespace is signed as its key
  alone (the Java demo's ``StringUtils.isBlank``).
* Signature = base64(HMAC-SHA256(AppSecret, string to sign as UTF-8)).

The form value here is a multi-megabyte base64 image, so everything is built as bytes
once: the image is never decoded, re-encoded or copied into a ``str``. The AppSecret enters
only :func:`signature`; nothing here returns, logs or formats it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

SIGNATURE_METHOD = "HmacSHA256"
# Signature methods the gateway accepts ("可选，默认 HmacSHA256"); HmacSHA1 is verify-only.
DIGESTS = {"HmacSHA256": hashlib.sha256, "HmacSHA1": hashlib.sha1}
MAX_SKEW_MS = 15 * 60 * 1000  # "时间戳有效时间为15分钟"

X_CA_KEY = "x-ca-key"
X_CA_NONCE = "x-ca-nonce"
X_CA_SIGNATURE = "x-ca-signature"
X_CA_SIGNATURE_HEADERS = "x-ca-signature-headers"
X_CA_SIGNATURE_METHOD = "x-ca-signature-method"
X_CA_TIMESTAMP = "x-ca-timestamp"
# Never in the Headers block: the signature itself, and headers signed in their own lines.
_UNSIGNED = {
    X_CA_SIGNATURE,
    X_CA_SIGNATURE_HEADERS,
    "accept",
    "content-md5",
    "content-type",
    "date",
}

Params = Mapping[str, str | bytes]


@dataclass(frozen=True)
class Signed:
    """One signature: the headers to add (X-Ca-*), and the string they sign."""

    headers: dict[str, str]
    string_to_sign: bytes
    signature: str


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def signed_header_block(headers: Mapping[str, str]) -> bytes:
    """``name:value\\n`` for each header, sorted by name as given."""
    return b"".join(_b(f"{name}:{headers[name]}\n") for name in sorted(headers))


def query_params(query: str) -> dict[str, str]:
    """The ``k=v`` pairs of a raw (percent-encoded) query string, decoded; the first of
    repeated keys wins (as the demos)."""
    params: dict[str, str] = {}
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            params.setdefault(unquote(key), unquote(value))
    return params


def path_and_parameters(path: str, query: str = "", form: Params | None = None) -> bytes:
    """Path, then ``?`` and the sorted query + form parameters (form wins on a clash)."""
    params: dict[str, str | bytes] = dict(query_params(query))
    params.update(form or {})
    if not params:
        return _b(path)
    # The Java demo drops "=value" when the value is blank (StringUtils.isBlank); isspace()
    # stops at the first non-space byte, so a 4 MB value is neither scanned nor copied.
    pairs = [
        _b(key) if not value or value.isspace() else _b(key) + b"=" + _b(value)
        for key, value in sorted(params.items())
    ]
    return _b(path) + b"?" + b"&".join(pairs)


def string_to_sign(
    *,
    method: str,
    accept: str = "",
    content_md5: str = "",
    content_type: str = "",
    date: str = "",
    headers: Mapping[str, str] | None = None,
    path: str,
    query: str = "",
    form: Params | None = None,
) -> bytes:
    """The gateway's string to sign; ``headers`` are the signed ones (name -> value)."""
    head = f"{method.upper()}\n{accept}\n{content_md5}\n{content_type}\n{date}\n"
    return _b(head) + signed_header_block(headers or {}) + path_and_parameters(path, query, form)


def signature(app_secret: str, to_sign: bytes, method: str = SIGNATURE_METHOD) -> str:
    digest = hmac.new(app_secret.encode("utf-8"), to_sign, DIGESTS[method]).digest()
    return base64.b64encode(digest).decode("ascii")


def sign(
    *,
    app_key: str,
    app_secret: str,
    method: str,
    path: str,
    query: str = "",
    accept: str = "",
    content_type: str = "",
    form: Params | None = None,
    timestamp_ms: int,
    nonce: str,
) -> Signed:
    """Sign one request; returns the X-Ca-* headers to send alongside Accept/Content-Type."""
    signed = {
        X_CA_KEY: app_key,
        X_CA_NONCE: nonce,
        X_CA_SIGNATURE_METHOD: SIGNATURE_METHOD,
        X_CA_TIMESTAMP: str(timestamp_ms),
    }
    to_sign = string_to_sign(
        method=method,
        accept=accept,
        content_type=content_type,
        headers=signed,
        path=path,
        query=query,
        form=form,
    )
    sig = signature(app_secret, to_sign)
    headers = dict(signed)
    headers[X_CA_SIGNATURE_HEADERS] = ",".join(sorted(signed))
    headers[X_CA_SIGNATURE] = sig
    return Signed(headers, to_sign, sig)


def string_to_sign_of(
    *,
    method: str,
    headers: Mapping[str, str],  # the request's headers, case-insensitive (CIMultiDict)
    path: str,
    query: str,  # as on the request line: percent-encoded
    form: Params | None,
) -> bytes:
    """What a verifier signs for a received request: the names ``X-Ca-Signature-Headers``
    lists (as spelled there, minus those never in the Headers block), with their values."""
    listed = [n.strip() for n in headers.get(X_CA_SIGNATURE_HEADERS, "").split(",")]
    signed = {n: headers.get(n, "") for n in listed if n and n.lower() not in _UNSIGNED}
    return string_to_sign(
        method=method,
        accept=headers.get("Accept", ""),
        content_md5=headers.get("Content-MD5", ""),
        content_type=headers.get("Content-Type", ""),
        date=headers.get("Date", ""),
        headers=signed,
        path=path,
        query=query,
        form=form,
    )
