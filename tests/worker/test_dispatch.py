"""How much the dispatcher puts on the broker per provider, and in what messages."""

from __future__ import annotations

from worker.dispatch import MIN_WINDOW, chunk, window
from worker.settings import build_settings


def test_the_window_never_holds_more_than_the_limiter_would_let_wait() -> None:
    assert window(10, build_settings(window_seconds=20, limiter_max_wait_seconds=30)) == 200
    # 60 s of calls at 10/s would put slots 60 s out; the limiter hands back any past 30 s.
    assert window(10, build_settings(window_seconds=60, limiter_max_wait_seconds=30)) == 300
    assert window(0.01, build_settings()) == MIN_WINDOW  # slow vendors still get a few at once


def test_one_id_per_message_at_vendor_rates_and_chunks_when_fast() -> None:
    settings = build_settings(chunk_size=8)
    assert chunk(10, settings) == 1
    assert chunk(100, settings) == 5
    assert chunk(100_000, settings) == 8
