"""The web chat's visitor sessions: the server picks the chat identity and keeps it behind a random
token in an HttpOnly, SameSite=Strict cookie, so no identifier is chosen by the browser, shown to
scripts or put in a URL (a client-chosen `user_id` in the query string was the only credential).

Each session has a CSRF token the page gets from the server (`csrf_of` the cookie token: a one-way
derivation, so it needs no column and no secret, and the stored hash does not give it away) and sends
back in a header with every request that changes something."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.security.models import WebSession
from bot.storage.models import utcnow

COOKIE = "madoguchi_chat"
CSRF_HEADER = "x-csrf-token"
TOUCH_EVERY = timedelta(hours=1)


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


def identity_of(session: Session, token: str) -> str | None:
    row = session.execute(select(WebSession.external_user_id).where(WebSession.token_hash == _hash(token)))
    return row.scalar_one_or_none()
