"""Japan time for display and for calendar days. Stored timestamps are naive UTC (bot.storage.models.utcnow);
Japan has no daylight saving, so a fixed +09:00 offset is exact."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

JST = timezone(timedelta(hours=9), "JST")


def to_jst(moment: datetime | None) -> datetime | None:
    """A stored (naive UTC) or aware timestamp as an aware JST one; None stays None."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(JST)


def jst_date(moment: datetime) -> date:
    """The Japanese calendar day of a timestamp."""
    return to_jst(moment).date()  # type: ignore[union-attr]


def jst_time(moment: datetime) -> str:
    return to_jst(moment).strftime("%H:%M")  # type: ignore[union-attr]


def jst_day_start_utc(day: date) -> datetime:
    """00:00 JST of `day` as the naive UTC the database stores."""
    return datetime(day.year, day.month, day.day, tzinfo=JST).astimezone(UTC).replace(tzinfo=None)


def utc_iso(moment: datetime | None) -> str | None:
    """A stored (naive UTC) timestamp as ISO 8601 that says it is UTC, for JSON output."""
    return moment.isoformat() + "Z" if moment is not None else None
