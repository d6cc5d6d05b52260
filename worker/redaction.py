"""One redaction for every text that comes from a vendor: no configured credential survives.

Vendors echo what they were sent (Tencent's "The SecretId ... is not found", a gateway's
error header, a request echoed beside the answer), and whatever a vendor says is stored
(``results.raw``, ``attempts``, ``jobs.last_error_message``, ``provider_states``), logged
and printed. :class:`Redactor` knows every credential configured for every provider
(each ``SecretStr`` of each provider's settings block, as written and percent-encoded)
and replaces it with :data:`MASK` wherever it appears: in error messages, vendor codes
and request ids, in the raw answer at any depth, in warnings and in readings. The
pipeline passes every vendor call's outcome through it before anything else sees it.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, SecretStr

from worker.errors import JobError

MASK = "***"
T = TypeVar("T")


class Redactor:
    """Replaces each of ``secrets`` (longest first) in any text with :data:`MASK`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._pattern = _pattern(frozenset(s for s in secrets if s))

    @classmethod
    def of(cls, settings: BaseModel) -> Redactor:
        """Every credential of every provider block of ``settings`` (and anything else the
        settings hold as a ``SecretStr``). Remembered per settings object: a worker asks
        for every message, and walking the settings cost more than the redaction."""
        hit = _BY_SETTINGS.get(id(settings))
        if hit is not None and hit[0] is settings:
            return hit[1]
        redactor = cls(_secret_values(settings))
        if len(_BY_SETTINGS) >= 16:  # tests build many settings; a worker, one
            _BY_SETTINGS.clear()
        _BY_SETTINGS[id(settings)] = (settings, redactor)
        return redactor

    def text(self, value: str) -> str:
        if self._pattern is None:
            return value
        return self._pattern.sub(MASK, value)

    def optional(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)

    def json(self, value: Any) -> Any:
        """A decoded JSON value with every string (keys included) redacted."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.json(k): self.json(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.json(v) for v in value]
        return value

    def fields(self, obj: T) -> T:
        """A dataclass (a reading) with its string fields redacted."""
        if self._pattern is None or not dataclasses.is_dataclass(obj) or isinstance(obj, type):
            return obj
        changes = {
            f.name: self.text(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if isinstance(getattr(obj, f.name), str)
        }
        return dataclasses.replace(obj, **changes)

    def error(self, exc: JobError) -> JobError:
        """``exc`` with its message, codes and raw answer redacted (in place: it is ours)."""
        if self._pattern is None:
            return exc
        exc.message = self.text(exc.message)
        exc.args = (exc.message,)
        exc.vendor_code = self.optional(exc.vendor_code)
        exc.request_id = self.optional(exc.request_id)
        exc.raw = self.json(exc.raw)
        return exc


# id(settings) -> (those settings, their redactor); the settings are kept so the id stays theirs.
_BY_SETTINGS: dict[int, tuple[BaseModel, Redactor]] = {}


@functools.cache
def _pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    forms = {form for s in secrets for form in (s, quote(s, safe=""))}
    if not forms:
        return None
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def _secret_values(model: BaseModel) -> list[str]:
    values: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            values.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            values.extend(_secret_values(value))
    return values
