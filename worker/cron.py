"""Cron expressions in a time zone: checking one, and the ticks it makes.

The expression is five fields (minute hour day-of-month month day-of-week) or a macro
(``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``), read by croniter in the
schedule's IANA time zone (zoneinfo, e.g. ``Asia/Shanghai``), daylight-saving changes
included. Times in and out are aware datetimes; ticks come out in UTC, as they are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from worker.errors import ConfigError

MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
EXAMPLE = "'0 2 * * *' is every day at 02:00"


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ConfigError naming an example if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown time zone {name!r}: give an IANA name such as Asia/Shanghai or UTC"
        ) from exc


@dataclass(frozen=True)
class Cron:
    """A checked cron expression and the time zone it is read in."""

    expression: str
    timezone: str

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> Cron:
        """``expression`` in ``timezone``, checked: five fields or a macro, valid values,
        and at least one tick (``0 2 30 2 *`` never comes). ConfigError otherwise."""
        text = " ".join(expression.split())
        if text.startswith("@"):
            text = text.lower()
        tz = zone(timezone)
        if not text.startswith("@") and len(text.split()) != 5:
            raise ConfigError(
                f"cron expression {expression!r} needs five fields (minute hour day month"
                f" weekday) or a macro such as @daily: {EXAMPLE}"
            )
        if text.startswith("@") and text not in MACROS:
            raise ConfigError(f"unknown cron macro {expression!r}: one of {', '.join(MACROS)}")
        cron = cls(text, timezone)
        try:
            cron.next_after(datetime.now(tz))
        except CroniterBadDateError as exc:
            raise ConfigError(f"cron expression {expression!r} never fires") from exc
        except (CroniterBadCronError, CroniterError, ValueError) as exc:
            raise ConfigError(f"invalid cron expression {expression!r}: {exc}; {EXAMPLE}") from exc
        return cron

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.timezone)

    def _iter(self, start: datetime) -> croniter:
        return croniter(self.expression, start.astimezone(self.zone))

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment``, in UTC."""
        tick: datetime = self._iter(moment).get_next(datetime)
        return tick.astimezone(UTC)

    def latest_until(self, moment: datetime) -> datetime:
        """The last tick at or before ``moment``, in UTC."""
        tick: datetime = self._iter(moment + timedelta(microseconds=1)).get_prev(datetime)
        return tick.astimezone(UTC)
