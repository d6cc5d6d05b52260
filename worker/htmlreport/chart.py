"""The throughput chart's geometry: one polyline per provider (jobs finished per second)
and one for vendor calls, with axis ticks; the template draws it as inline SVG."""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.batch_report import Throughput

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 28  # margins for the axes' labels
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")
CALLS_COLOUR = "#7f7f7f"


@dataclass(frozen=True)
class Series:
    label: str
    colour: str
    points: str  # SVG "x,y x,y ..."
    total: int
    dashed: bool = False


@dataclass(frozen=True)
class Tick:
    at: float  # x or y in the SVG
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    series: list[Series]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    plot: tuple[float, float, float, float]  # left, top, right, bottom
    bucket_seconds: float


def _nice(top: float) -> float:
    """A round axis maximum at or above ``top`` (1, 2 or 5 times a power of ten)."""
    if top <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(top))
    return next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= top)


def _elapsed(seconds: float, span: float) -> str:
    """Time since the start as a tick label: ``2.5s`` (short spans), ``45s``, ``3:05``, ``1h02``."""
    if span < 10:
        return f"{seconds:.1f}s"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}"
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{s}s"


def throughput_chart(t: Throughput) -> Chart | None:
    """The chart of ``t``; None when nothing finished (no line to draw)."""
    if t.start is None or not t.buckets:
        return None
    left, top, right, bottom = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM
    rates = {p: [n / t.bucket_seconds for n in counts] for p, counts in t.finished.items()}
    calls = [n / t.bucket_seconds for n in t.calls]
    y_max = _nice(max([*calls, *(r for v in rates.values() for r in v)], default=0.0))
    step = (right - left) / max(1, t.buckets - 1)

    def points(values: list[float]) -> str:
        # Each bucket is drawn at its middle; one bucket alone becomes a flat segment.
        xs = [left + step * i for i in range(len(values))] if len(values) > 1 else [left, right]
        vs = values if len(values) > 1 else values * 2
        return " ".join(
            f"{x:.1f},{bottom - (bottom - top) * v / y_max:.1f}"
            for x, v in zip(xs, vs, strict=True)
        )

    series = [
        Series(p, PALETTE[i % len(PALETTE)], points(v), sum(t.finished[p]))
        for i, (p, v) in enumerate(rates.items())
    ]
    series.append(Series("vendor calls", CALLS_COLOUR, points(calls), sum(t.calls), dashed=True))
    span = t.bucket_seconds * max(1, t.buckets - 1)  # the last point is the last bucket's
    x_ticks = [
        Tick(left + (right - left) * f, _elapsed(span * f, span))
        for f in (0.0, 0.25, 0.5, 0.75, 1.0)
    ]
    y_ticks = [Tick(bottom - (bottom - top) * f, f"{y_max * f:g}") for f in (0.0, 0.5, 1.0)]
    return Chart(
        WIDTH, HEIGHT, series, x_ticks, y_ticks, (left, top, right, bottom), t.bucket_seconds
    )
