"""The fast form encoder gives exactly urllib's bytes."""

from __future__ import annotations

import base64
import os
from urllib.parse import parse_qs, urlencode

from hypothesis import given
from hypothesis import strategies as st

from worker.providers.form import form_body, quote_b64


@given(st.binary(max_size=300))
def test_quote_b64_matches_urlencode(data: bytes) -> None:
    b64 = base64.b64encode(data)
    assert quote_b64(b64) == urlencode({"": b64.decode()})[1:].encode()


def test_form_body_matches_urlencode_and_round_trips() -> None:
    b64 = base64.b64encode(os.urandom(100_000))
    fields = {"key": "a b&c=d/é"}
    body = form_body(fields, {"image": b64})
    assert body == urlencode({**fields, "image": b64.decode()}).encode()
    assert parse_qs(body.decode()) == {"key": ["a b&c=d/é"], "image": [b64.decode()]}
