"""worker.redaction: every configured credential masked in whatever a vendor said."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import SecretStr

from tests.support.storage import settings_for
from worker.config import secret_fields
from worker.errors import Outcome, ProviderUnavailable
from worker.jobrun import CallFacts, JobRun
from worker.pipeline import redacted
from worker.providers.base import PlateReading, VendorAnswer
from worker.providers.registry import settings_models
from worker.redaction import MASK, Redactor


def test_every_credential_of_every_provider_is_known() -> None:
    settings = settings_for("sqlite://")
    secrets = [
        getattr(settings.provider(name), field)
        for name, model in settings_models().items()
        for field in secret_fields(model)
    ]
    values = [s.get_secret_value() for s in secrets if isinstance(s, SecretStr)]
    assert len(values) >= 6  # Tencent's id and key, Juhe x2, Tianapi, Aliyun's three
    redactor = Redactor.of(settings)
    said = " | ".join(values)
    assert redactor.text(said) == " | ".join([MASK] * len(values))


def test_longest_first_encoded_forms_and_any_depth() -> None:
    redactor = Redactor(["abc", "abc+def/1", ""])  # one inside another; an empty one ignored
    assert redactor.text("k=abc+def/1 and abc") == f"k={MASK} and {MASK}"
    assert redactor.text("k=abc%2Bdef%2F1") == f"k={MASK}"  # as a query string carries it
    assert redactor.text("nothing here") == "nothing here"
    assert redactor.json({"abc": ["x abc", {"n": 1, "m": "abc"}], "ok": None}) == {
        MASK: [f"x {MASK}", {"n": 1, "m": MASK}],
        "ok": None,
    }
    assert Redactor([]).text("abc") == "abc"


def test_a_run_keeps_no_credential_anywhere() -> None:
    redactor = Redactor(["AKIDsecret"])
    reading = PlateReading(0, "沪AAKIDsecret", "blue")
    answer = VendorAnswer(
        Outcome.SUCCEEDED,
        {"Response": {"RequestId": "r-AKIDsecret", "echo": "SecretId=AKIDsecret"}},
        [reading],
        vendor_code="AKIDsecret",
        request_id="r-AKIDsecret",
        warnings=["copy (AKIDsecret)"],
    )
    call = CallFacts(datetime.now(UTC), 1.0, 200, "AKIDsecret", "r-AKIDsecret", True)
    kept = redacted(JobRun(answer=answer, call=call), redactor)
    assert "AKIDsecret" not in repr(kept)
    assert kept.answer is not None
    assert kept.answer.readings == [PlateReading(0, f"沪A{MASK}", "blue")]

    error = ProviderUnavailable(
        "AuthFailure.SecretIdNotFound: The SecretId AKIDsecret is not found",
        vendor_code="AuthFailure",
        request_id="AKIDsecret",
        raw={"Message": "AKIDsecret"},
    )
    refused = redacted(JobRun(error=error), redactor)
    assert refused.error is not None
    assert "AKIDsecret" not in str(refused.error) + repr(refused.error.raw)
    assert refused.error.message.endswith(f"The SecretId {MASK} is not found")
