"""When the call-center is open: weekdays, configured hours, minus national holidays (jpholiday),
the year-end break and any extra closed days.

Everything is in Japan time. `next_opening` tells a user outside hours when
a person will pick up their question; `business_minutes_between` measures
how long a ticket really waited, for the overdue rule (a ticket raised on
Friday evening is not overdue on Saturday).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import jpholiday

from bot.jst import JST, to_jst
from bot.settings import Settings

WEEKDAYS_JA = "月火水木金土日"


def _local(moment: datetime) -> datetime:
    """Naive values are the stored UTC; aware values are converted."""
    local = to_jst(moment)
    assert local is not None
    return local


class BusinessCalendar:
    def __init__(self, opens: time, closes: time, year_end: tuple[tuple[int, int], tuple[int, int]],
                 extra_closed: set[date] | None = None) -> None:
        self.opens = opens
        self.closes = closes
        self.year_end = year_end
        self.extra_closed = extra_closed or set()

    @classmethod
    def from_settings(cls, settings: Settings) -> BusinessCalendar:
        return cls.from_hours(settings.hours.open, settings.hours.close, settings.hours.year_end_closed,
                              settings.hours.extra_closed_days)

    @classmethod
    def from_hours(cls, opens: str, closes: str, year_end_closed: str, closed_days: list[date]) -> BusinessCalendar:
        """From the `hours:` of a program file (the same fields as the BUSINESS_* settings)."""
        def parse_md(text: str) -> tuple[int, int]:
            month, day = text.split("-")
            return int(month), int(day)

        start, _, end = year_end_closed.partition("..")
        return cls(time.fromisoformat(opens), time.fromisoformat(closes), (parse_md(start), parse_md(end)),
                   set(closed_days))

    def is_business_day(self, day: date) -> bool:
        if day.weekday() >= 5 or jpholiday.is_holiday(day) or day in self.extra_closed:
            return False
        start, end = self.year_end
        md = (day.month, day.day)
        # 12-29..01-03 wraps over New Year; a range like 08-13..08-16 does not.
        in_break = (md >= start or md <= end) if start > end else (start <= md <= end)
        return not in_break

    def is_open(self, moment: datetime) -> bool:
        local = _local(moment)
        return self.is_business_day(local.date()) and self.opens <= local.time() < self.closes

    def next_opening(self, moment: datetime) -> datetime:
        """The next moment (JST) staff are in: `moment` itself when open."""
        local = _local(moment)
        if self.is_open(local):
            return local
        day = local.date()
        if self.is_business_day(day) and local.time() < self.opens:
            return datetime.combine(day, self.opens, JST)
        for _ in range(370):
            day += timedelta(days=1)
            if self.is_business_day(day):
                return datetime.combine(day, self.opens, JST)
        raise ValueError("no business day within a year: check the business-hours settings")

    def business_minutes_between(self, start: datetime, end: datetime) -> float:
        """Minutes of opening hours between two moments."""
        start, end = _local(start), _local(end)
        total = 0.0
        day = start.date()
        while day <= end.date():
            if self.is_business_day(day):
                window_start = max(start, datetime.combine(day, self.opens, JST))
                window_end = min(end, datetime.combine(day, self.closes, JST))
                if window_end > window_start:
                    total += (window_end - window_start).total_seconds() / 60
            day += timedelta(days=1)
        return total


def describe_opening(moment: datetime, locale: str = "ja") -> str:
    """「11月24日（月）10:00」"""
    local = _local(moment)
    if locale == "ja":
        return f"{local.month}月{local.day}日（{WEEKDAYS_JA[local.weekday()]}）{local:%H:%M}"
    return f"{local:%a %d %b %H:%M}"
