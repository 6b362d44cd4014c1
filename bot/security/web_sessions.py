"""The web chat's visitor sessions: the server picks the chat identity and keeps it behind a random
token in an HttpOnly, SameSite=Strict cookie, so no identifier is chosen by the browser, shown to
scripts or put in a URL (a client-chosen `user_id` in the query string was the only credential).

Each session has a CSRF token the page gets from the server (`csrf_of` the cookie token: a one-way
derivation, so it needs no column and no secret, and the stored hash does not give it away) and sends
back in a header with every request that changes something.

A session is made only when the page is about to send its first message (`POST /api/chat/session`), never
by reading a page or the history, and no more than `limits.web_sessions_per_ip` per client address and
`limits.web_sessions_global` from anyone per hour. `purge` (hourly, in the delivery worker) deletes the
expired sessions and the ones never used to talk that have sat idle a day."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.orm import Session

from bot.security import throttle
from bot.security.models import WebSession
from bot.storage.models import ChannelIdentity, utcnow

COOKIE = "madoguchi_chat"
CSRF_HEADER = "x-csrf-token"
TOUCH_EVERY = timedelta(hours=1)
#: The window of the session-creation limits.
START_WINDOW = timedelta(hours=1)
#: A session nobody has talked through is deleted after this much idling.
EMPTY_IDLE = timedelta(days=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def resolve(session: Session, token: str | None, max_age: timedelta) -> str | None:
    """The chat identity of a live session token, else None."""
    if not token or len(token) > 200:
        return None
    row = session.get(WebSession, _hash(token))
    if row is None or utcnow() - row.last_seen_at > max_age:
        return None
    if utcnow() - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = utcnow()
    return row.external_user_id


def csrf_of(token: str) -> str:
    """The session's CSRF token (given to the page, which cannot read the HttpOnly cookie)."""
    return hashlib.sha256(b"madoguchi-chat-csrf:" + token.encode()).hexdigest()


def csrf_matches(token: str | None, presented: str | None) -> bool:
    return bool(token and presented) and hmac.compare_digest(csrf_of(str(token)), str(presented))


def start(session: Session) -> tuple[str, str]:
    """A new visitor: (cookie token, chat identity)."""
    token = secrets.token_urlsafe(32)
    external_user_id = f"web-{secrets.token_hex(16)}"
    session.add(WebSession(token_hash=_hash(token), external_user_id=external_user_id))
    session.flush()
    return token, external_user_id


def admit_start(session: Session, client_ip: str, per_ip: int, overall: int) -> int | None:
    """Count one new session against the client address, then overall. None: admitted; else the seconds until
    the full window frees up (for Retry-After). An address over its own limit is not counted overall, so one
    client cannot use up everyone's budget."""
    for key, limit in ((f"web-session:ip:{client_ip}", per_ip), ("web-session:all", overall)):
        if throttle.hit(session, key, START_WINDOW) > limit:
            return throttle.seconds_left(session, key, START_WINDOW)
    return None


def purge(session: Session, max_age: timedelta, empty_idle: timedelta = EMPTY_IDLE) -> int:
    """Delete the sessions past their age (the cookie no longer works) and those idle for `empty_idle` that
    never talked (no chat identity was made for them). Returns how many."""
    now = utcnow()
    talked = exists().where(ChannelIdentity.channel == "web",
                            ChannelIdentity.external_user_id == WebSession.external_user_id)
    result = session.execute(delete(WebSession).where(or_(
        WebSession.last_seen_at < now - max_age,
        (WebSession.last_seen_at < now - empty_idle) & ~talked)).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def identity_of(session: Session, token: str) -> str | None:
    row = session.execute(select(WebSession.external_user_id).where(WebSession.token_hash == _hash(token)))
    return row.scalar_one_or_none()
