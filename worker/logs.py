"""How vrec's processes log: one line per record on stderr, as text or as one JSON object.

``VREC_LOG_FORMAT=json`` (setting ``log_format``) writes every record, Celery's included,
as one JSON object per line (python-json-logger): ``timestamp``, ``level``, ``logger``,
``message``, any traceback, and the record's structured fields. vrec's own structured
lines pass their fields as ``extra={"fields": {...}}``: JSON puts them at the top level,
text appends them as ``key=value`` (values that are not plain words are JSON-quoted, so a
vendor's text can neither break the line nor forge another field).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

FIELDS = "fields"  # the ``extra`` key of a record's structured fields
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_PLAIN = re.compile(r"[\w.:/@+-]+")


def _value(value: object) -> str:
    if value is None:
        return "-"
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, then the record's fields as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict) and fields:
            pairs = " ".join(f"{key}={_value(value)}" for key, value in fields.items())
            head, sep, rest = line.partition("\n")  # a traceback stays after the fields
            line = f"{head} {pairs}{sep}{rest}"
        return line


class JsonFormatter(_JsonFormatter):
    """One JSON object per record, the structured fields at its top level."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        fields = log_data.pop(FIELDS, None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                log_data.setdefault(key, value)


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of ``log_format`` ``fmt`` (text or json)."""
    return JsonFormatter() if fmt == "json" else TextFormatter(TEXT_FORMAT)


def configure(level: int | str, fmt: str) -> None:
    """Send every record at ``level`` and above to stderr, formatted as ``fmt``; Python's
    warnings become records too (so a JSON log stays JSON)."""
    logging.captureWarnings(True)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
