"""One-time codes: 8 characters shown as ABCD-2345, single use, expiring, stored only as a hash.

The alphabet leaves out 0/O and 1/I/L so a code read aloud on the phone or
copied from paper survives. Eight characters from 31 give about 40 bits;
with expiry and at most `MAX_FAILURES_PER_HOUR` wrong tries per person that
is far beyond guessing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.security import throttle
from bot.storage import audit
from bot.storage.models import AuditEvent, utcnow
from handlers.accounts.models import LinkCode
from bot.text import normalize

if TYPE_CHECKING:
    from bot.handler import Turn
    from bot.messages import Reply

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
MAX_FAILURES_PER_HOUR = 5
CODE_PATTERN = re.compile(rf"[{ALPHABET}]{{4}}-?[{ALPHABET}]{{4}}")
#: Text that is surely meant as a code: ABCD-2345 (any case, full-width), optionally after 連携 / /link / /start.
#: Any 4-4 letters/digits counts as an attempt (a mistyped code gets "invalid", not an FAQ answer).
CODE_MESSAGE = re.compile(r"^(?:(?:連携|コード|確認コード|/LINK|/START|/CONFIRM)\s*[:：]?\s*([A-Z0-9]{4}-?[A-Z0-9]{4})"
                          r"|([A-Z0-9]{4}-[A-Z0-9]{4}))$")


class CodeError(ValueError):
    """invalid | expired | used | too_many_attempts (an i18n key suffix)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def canonical(text: str) -> str | None:
    """'abcd-2345', 'ＡＢＣＤ２３４５' -> 'ABCD2345'; None when it is not a code."""
    compact = normalize(text).upper().replace(" ", "")
    if not CODE_PATTERN.fullmatch(compact):
        return None
    return compact.replace("-", "")


def code_in_message(text: str) -> str | None:
    """The code in a chat message that consists of a code (with an optional keyword), else None."""
    match = CODE_MESSAGE.match(normalize(text).upper())
    return (match.group(1) or match.group(2)).replace("-", "") if match else None


def display(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def issue(session: Session, purpose: str, *, hours: int, person_id: int | None = None,
          visit_id: int | None = None) -> str:
    """Create a code; the clear text is returned once and never stored."""
    code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    session.add(LinkCode(code_hash=_hash(code), purpose=purpose, person_id=person_id, visit_id=visit_id,
                         expires_at=utcnow() + timedelta(hours=hours)))
    session.flush()
    return display(code)


def recent_failures(session: Session, person_id: int) -> int:
    since = utcnow() - timedelta(hours=1)
    return session.execute(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "code.rejected", AuditEvent.actor_person_id == person_id,
        AuditEvent.created_at >= since)).scalar_one()


FAILURE_WINDOW = timedelta(hours=1)


def over_limits(session: Session, client_ip: str | None, per_ip: int, overall: int) -> bool:
    """Wrong codes from this client address, or from anyone, reached their hourly limit (a fresh chat
    identity per guess does not get fresh tries)."""
    if client_ip and throttle.count(session, f"code:ip:{client_ip}", FAILURE_WINDOW) >= per_ip:
        return True
    return throttle.count(session, "code:global", FAILURE_WINDOW) >= overall


def count_failure(session: Session, client_ip: str | None) -> None:
    if client_ip:
        throttle.hit(session, f"code:ip:{client_ip}", FAILURE_WINDOW)
    throttle.hit(session, "code:global", FAILURE_WINDOW)


def check(session: Session, code: str) -> LinkCode:
    """The valid, unused code row (locked), or CodeError (invalid, used, expired)."""
    row = session.execute(
        select(LinkCode).where(LinkCode.code_hash == _hash(code)).with_for_update()
    ).scalar_one_or_none()
    if row is None:
        raise CodeError("invalid")
    if row.used_at is not None:
        raise CodeError("used")
    if row.expires_at <= utcnow():
        raise CodeError("expired")
    return row


def find(session: Session, code: str, person_id: int) -> LinkCode:
    """The valid, unused code row (locked), or CodeError. Does not consume it."""
    if recent_failures(session, person_id) >= MAX_FAILURES_PER_HOUR:
        raise CodeError("too_many_attempts")
    return check(session, code)


def refuse_anonymous(session: Session, text: str, known: bool, client_ip: str | None, per_ip: int,
                     overall: int) -> str | None:
    """For a chat identity that does not exist yet (`known` False) sending a code: the refusal reason
    (an i18n key suffix) when the attempt fails, counted against the address and overall, so that a
    failed guess creates no person; None when the message is not a code or the code is good (the chat
    handler then redeems it as usual)."""
    code = code_in_message(text)
    if code is None or known:
        return None
    if over_limits(session, client_ip, per_ip, overall):
        return "too_many_attempts"
    try:
        check(session, code)
    except CodeError as error:
        count_failure(session, client_ip)
        audit.record(session, "code.rejected", subject_type="client", data={"reason": error.reason, "anonymous": True})
        return error.reason
    return None


def consume(row: LinkCode, person_id: int) -> None:
    row.used_at = utcnow()
    row.used_by_person_id = person_id


#: What redeeming a code of each purpose does in chat; capabilities register theirs at import.
REDEEMERS: dict[str, Callable[[Turn, LinkCode], list[Reply]]] = {}


def redeemer(purpose: str) -> Callable[[Callable[[Turn, LinkCode], list[Reply]]], Callable[[Turn, LinkCode], list[Reply]]]:
    def decorate(function: Callable[[Turn, LinkCode], list[Reply]]) -> Callable[[Turn, LinkCode], list[Reply]]:
        REDEEMERS[purpose] = function
        return function

    return decorate
