"""Server-side console sessions: the signed cookie carries a random session token; the session is a row
that logout, a password change and disabling the account end, with an idle timeout and a maximum age.

A cookie copied before any of those is worth nothing afterwards (a signed cookie alone outlived them
for its whole 8 hours).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.security.models import StaffSession
from bot.settings import Settings
from bot.storage.models import utcnow

#: last_seen_at is written at most this often (a page view is not a write each time).
TOUCH_EVERY = timedelta(seconds=60)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(session: Session, staff_id: int) -> str:
    """A new session for the account; returns the token for the cookie (stored only hashed)."""
    token = secrets.token_urlsafe(32)
    session.add(StaffSession(token_hash=_hash(token), staff_id=staff_id))
    session.flush()
    return token


def resolve(session: Session, token: str | None, settings: Settings) -> int | None:
    """The staff id of a live session, touching it; None (and the session ended) when idle or too old."""
    if not token:
        return None
    row = session.execute(select(StaffSession).where(StaffSession.token_hash == _hash(token))).scalar_one_or_none()
    if row is None or row.ended_at is not None:
        return None
    now = utcnow()
    if now - row.last_seen_at > timedelta(minutes=settings.staff.session_idle_minutes):
        return None  # idle too long: refused from now on (last_seen_at is never moved forward again)
    if now - row.created_at > timedelta(hours=settings.staff.session_max_hours):
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
    return row.staff_id


def end(session: Session, token: str | None, reason: str = "logout") -> None:
    if token:
        row = session.execute(select(StaffSession).where(StaffSession.token_hash == _hash(token))).scalar_one_or_none()
        if row is not None and row.ended_at is None:
            _end(row, reason)


def end_all(session: Session, staff_id: int, reason: str) -> None:
    """Every live session of the account (password changed, account disabled)."""
    session.execute(update(StaffSession).where(StaffSession.staff_id == staff_id, StaffSession.ended_at.is_(None))
                    .values(ended_at=utcnow(), ended_reason=reason))


def _end(row: StaffSession, reason: str) -> None:
    row.ended_at = utcnow()
    row.ended_reason = reason
