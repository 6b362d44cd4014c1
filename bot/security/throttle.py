"""Atomic attempt counters in the database, shared by every worker: login tries per user name and per
client address, link-code guesses per address and overall, bytes uploaded to the console per address and account.

`hit` counts one attempt and returns the count in the current window in one statement
(INSERT ... ON CONFLICT DO UPDATE ... RETURNING, on PostgreSQL and SQLite alike), so twenty parallel
attempts are twenty counts, not one. Attempts are counted before the secret is checked: a caller that
is over the limit is refused without the check, and a success may `clear` its key.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import DateTime, bindparam, select, text
from sqlalchemy.orm import Session

from bot.security.models import ThrottleCounter
from bot.storage.models import utcnow

_HIT = text("""
INSERT INTO throttle_counters (key, window_start, count) VALUES (:key, :now, :amount)
ON CONFLICT (key) DO UPDATE SET
  count = CASE WHEN throttle_counters.window_start < :cutoff THEN :amount ELSE throttle_counters.count + :amount END,
  window_start = CASE WHEN throttle_counters.window_start < :cutoff THEN :now
                      ELSE throttle_counters.window_start END
RETURNING count
""").bindparams(bindparam("now", type_=DateTime), bindparam("cutoff", type_=DateTime))


def hit(session: Session, key: str, window: timedelta, amount: int = 1) -> int:
    """Count one attempt (or `amount`, bytes of an upload) under `key`; returns the total in the current window,
    this one included."""
    now = utcnow()
    return int(session.execute(_HIT, {"key": key[:200], "now": now, "cutoff": now - window,
                                      "amount": amount}).scalar_one())


def count(session: Session, key: str, window: timedelta) -> int:
    """Attempts in the current window, without counting one."""
    row = session.execute(select(ThrottleCounter.count, ThrottleCounter.window_start)
                          .where(ThrottleCounter.key == key[:200])).first()
    if row is None or row[1] < utcnow() - window:
        return 0
    return int(row[0])


def seconds_left(session: Session, key: str, window: timedelta) -> int:
    """Seconds until the current window of `key` ends (at least 1): what a refusal's Retry-After says."""
    row = session.execute(select(ThrottleCounter.window_start).where(ThrottleCounter.key == key[:200])).first()
    if row is None:
        return 1
    return max(1, int((row[0] + window - utcnow()).total_seconds()) + 1)


def clear(session: Session, key: str) -> None:
    session.execute(text("DELETE FROM throttle_counters WHERE key = :key"), {"key": key[:200]})
