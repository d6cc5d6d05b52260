"""The pieces of observability that need no service: bounded metric labels, and log lines
that stay one line (text) or one object (JSON) whatever a vendor's text holds."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from worker import logs, metrics


def test_vendor_codes_are_bounded_label_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_codes", {})
    assert metrics.code_label("p", None) == "none"
    assert metrics.code_label("p", "") == "none"
    assert metrics.code_label("p", "x" * 100) == "x" * metrics.MAX_CODE_LENGTH
    for i in range(metrics.MAX_CODES - 1):
        assert metrics.code_label("p", f"code{i}") == f"code{i}"
    assert metrics.code_label("p", "one-too-many") == "other"
    assert metrics.code_label("p", "code3") == "code3"  # known codes keep their label
    assert metrics.code_label("q", "one-too-many") == "one-too-many"  # per provider


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    yield out
    root.handlers, root.level = saved
    logging.captureWarnings(False)


def _emit(out: io.StringIO, fmt: str) -> str:
    logs.configure("INFO", fmt)
    logging.getLogger().handlers[0].setStream(out)  # type: ignore[attr-defined]
    fields = {"job": 7, "code": 'Bad\nCode" x=1', "error": "refusé, deux fois", "duration_ms": None}
    logging.getLogger("vrec.jobs").info("job %s", "finished", extra={"fields": fields})
    logging.getLogger("vrec.jobs").debug("not shown")
    return out.getvalue()


def test_a_text_line_stays_one_line_with_quoted_fields(captured: io.StringIO) -> None:
    text = _emit(captured, "text")
    assert text.count("\n") == 1
    assert " INFO vrec.jobs: job finished job=7 " in text
    assert 'code="Bad\\nCode\\" x=1"' in text  # quoted: no forged x=1 field
    assert 'error="refusé, deux fois"' in text
    assert text.rstrip().endswith("duration_ms=-")


def test_a_json_line_is_one_object_with_the_fields_at_the_top(captured: io.StringIO) -> None:
    text = _emit(captured, "json")
    assert text.count("\n") == 1
    record = json.loads(text)
    assert record["level"] == "INFO"
    assert record["logger"] == "vrec.jobs"
    assert record["message"] == "job finished"
    assert record["job"] == 7
    assert record["code"] == 'Bad\nCode" x=1'
    assert record["error"] == "refusé, deux fois"
    assert "fields" not in record
