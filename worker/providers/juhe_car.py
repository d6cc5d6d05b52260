"""Juhe carDetect (车型识别): car make/model/year candidates and the body colour.

Request: ``POST http://apis.juhe.cn/carDetect/index``, ``application/x-www-form-urlencoded``
with ``key`` and ``image`` (base64 without a ``data:`` header, then urlencoded).
Answer: Juhe's envelope (:mod:`worker.providers.juhe`) whose ``result`` is
``{"data": [{name, score, year, baike_info{baike_url, image_url, description}}], "color"}``;
one :class:`CarModelCandidate` per ``data`` entry, in the vendor's order (rank 1 = best).

Billing: Juhe bills ``error_code`` 0 only (see :mod:`worker.providers.juhe`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from worker.config import FitMode, ProviderSettings
from worker.errors import VendorRejectedImage
from worker.providers import juhe
from worker.providers.base import CarModelCandidate
from worker.providers.common import NO_RESULT, text
from worker.providers.keyed_form import KeySettings

NAME: Final = "juhe_car"

# The doc's service codes; system codes come from juhe.SYSTEM_ERRORS.
ERRORS: Final[Mapping[int, juhe.Kind]] = {
    # 识别失败: Juhe could not process this image (the simulator answers it for
    # undecodable, oversized or out-of-range images). The same bytes fail the same way, and
    # retrying only delays the verdict, so it is terminal, like a decode failure. A one-off
    # hiccup on Juhe's side comes as 10014 instead.
    237101: VendorRejectedImage,
    237102: NO_RESULT,  # 非车类或识别不到信息: looked, found no car (design.md)
}


def _score(value: Any) -> float | None:
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    return score if math.isfinite(score) else None


def candidates_of(result: Any) -> list[CarModelCandidate]:
    """One candidate per named ``data`` entry, ranked in the vendor's order.

    Raises ValueError when ``result`` or ``result.data`` has the wrong shape; a missing
    or null one is an empty answer.
    """
    result, entries = juhe.result_list(result, "data")
    color = text(result.get("color"))
    candidates: list[CarModelCandidate] = []
    for entry in entries:
        if not isinstance(entry, dict) or text(entry.get("name")) is None:
            continue  # nothing to store or search by
        baike = entry.get("baike_info")
        baike = baike if isinstance(baike, dict) else {}
        candidates.append(
            CarModelCandidate(
                rank=len(candidates) + 1,
                name=text(entry.get("name")),
                year=text(entry.get("year")),
                score=_score(entry.get("score")),
                baike_url=text(baike.get("baike_url")),
                image_url=text(baike.get("image_url")),
                description=text(baike.get("description")),
                color=color,
            )
        )
    return candidates


class JuheCarSettings(KeySettings):
    """``VREC_JUHE_CAR__*``: the API key and where carDetect lives."""

    base_url: str = "http://apis.juhe.cn/carDetect/index"


class JuheCar(juhe.JuheAdapter[JuheCarSettings]):
    """The adapter: builds the form, maps answers. No I/O (see :mod:`worker.providers.base`)."""

    name: ClassVar[str] = NAME
    settings_model: ClassVar[type[ProviderSettings]] = JuheCarSettings
    errors: ClassVar[Mapping[int, juhe.Kind]] = ERRORS
    image_field: ClassVar[str] = "image"
    # Car make and model are read from the body's shape and grille, coarse features that a
    # decode-time scale keeps ("reads the largest car"): the cheaper fit is enough.
    fit: ClassVar[FitMode] = "fast"

    def read(self, result: Any) -> list[CarModelCandidate]:
        return candidates_of(result)
