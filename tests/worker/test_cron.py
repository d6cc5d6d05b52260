"""Cron expressions in a time zone: what is accepted, and the ticks they make."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.cron import Cron
from worker.errors import ConfigError


def test_daily_at_two_in_shanghai() -> None:
    cron = Cron.parse("0 2 * * *", "Asia/Shanghai")
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
    assert cron.next_after(now) == datetime(2026, 12, 1, 18, 0, tzinfo=UTC)  # 02:00 +08:00
    assert cron.latest_until(now) == datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
    tick = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
    assert cron.latest_until(tick) == tick  # a tick is its own latest
    assert cron.next_after(tick) == datetime(2026, 12, 2, 18, 0, tzinfo=UTC)


def test_ticks_follow_daylight_saving() -> None:
    cron = Cron.parse("0 9 * * *", "Europe/Berlin")
    winter = cron.next_after(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    summer = cron.next_after(datetime(2026, 4, 1, 12, 0, tzinfo=UTC))
    assert (winter.hour, summer.hour) == (8, 7)  # 09:00 at +01:00, then at +02:00


@pytest.mark.parametrize(
    ("expression", "timezone", "message"),
    [
        ("0 2 * *", "UTC", "needs five fields"),
        ("0 2 * * * *", "UTC", "needs five fields"),  # no seconds field
        ("61 2 * * *", "UTC", "invalid cron expression '61 2 \\* \\* \\*'"),
        ("0 2 31 2 *", "UTC", "never fires"),
        ("@fortnightly", "UTC", "unknown cron macro"),
        ("0 2 * * *", "Asia/Peking", "unknown time zone 'Asia/Peking'"),
        ("0 2 * * *", "../etc/passwd", "unknown time zone"),
    ],
)
def test_what_is_refused(expression: str, timezone: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Cron.parse(expression, timezone)


def test_macros_and_spacing() -> None:
    assert Cron.parse("@daily").next_after(datetime(2026, 12, 1, 5, tzinfo=UTC)) == datetime(
        2026, 12, 2, tzinfo=UTC
    )
    assert Cron.parse("  */15   *  * * 1-5 ").expression == "*/15 * * * 1-5"
    assert Cron.parse("@Hourly").expression == "@hourly"
