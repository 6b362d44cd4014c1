"""Staff accounts: passwords hashed with argon2, Slack users mapped to accounts.

A person in the Slack staff channel acts as staff there; the first time an
unknown Slack user claims or answers, an account without a password is made
for them (it cannot log into the web console until an admin sets one).
"""

from __future__ import annotations

from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.security import staff_sessions
from bot.security.usernames import normalize_username
from bot.storage import audit
from bot.storage.models import utcnow
from handlers.escalation.models import StaffAccount
from bot.programs import staff_programs

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10
#: Verifying against this keeps the time of a login for an unknown user the same as for a known one.
_DUMMY_HASH = _hasher.hash("madoguchi-no-such-user")


class StaffError(ValueError):
    pass


def create(session: Session, username: str, display_name: str, password: str | None, *, role: str = "staff",
           slack_user_id: str | None = None) -> StaffAccount:
    username = normalize_username(username)
    if not username or len(username) > 80:
        raise StaffError("ユーザー名が空か長すぎます")
    if role not in ("staff", "admin"):
        raise StaffError("role は staff か admin です")
    if session.execute(select(StaffAccount.id).where(StaffAccount.username == username)).first():
        raise StaffError(f"ユーザー名 {username} は使われています")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"パスワードは{MIN_PASSWORD_LENGTH}文字以上にしてください")
    account = StaffAccount(username=username, display_name=display_name.strip() or username, role=role,
                           password_hash=_hasher.hash(password) if password else None,
                           slack_user_id=slack_user_id or None, active=True)
    session.add(account)
    session.flush()
    audit.record(session, "staff.created", subject_type="staff", subject_id=account.id, data={"role": role})
    return account


def set_password(session: Session, account: StaffAccount, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"パスワードは{MIN_PASSWORD_LENGTH}文字以上にしてください")
    account.password_hash = _hasher.hash(password)
    staff_sessions.end_all(session, account.id, "password_changed")  # a copied cookie dies with the password
    audit.record(session, "staff.password_changed", subject_type="staff", subject_id=account.id)


def disable(session: Session, account: StaffAccount) -> None:
    """Block the account from the console; its live sessions end now."""
    account.active = False
    staff_sessions.end_all(session, account.id, "disabled")
    audit.record(session, "staff.disabled", subject_type="staff", subject_id=account.id)


def authenticate(session: Session, username: str, password: str) -> StaffAccount | None:
    account = session.execute(select(StaffAccount).where(
        StaffAccount.username == normalize_username(username))).scalar_one_or_none()
    stored = account.password_hash if account and account.active and account.password_hash else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        audit.record(session, "staff.login_failed", data={"username": normalize_username(username)[:80]})
        return None
    if account is None or stored is _DUMMY_HASH:
        return None
    if _hasher.check_needs_rehash(stored):
        account.password_hash = _hasher.hash(password)
    account.last_login_at = utcnow()
    audit.record(session, "staff.login", subject_type="staff", subject_id=account.id)
    return account


def for_slack_user(session: Session, slack_user_id: str, display_name: str | None = None) -> StaffAccount:
    account = session.execute(select(StaffAccount).where(
        StaffAccount.slack_user_id == slack_user_id)).scalar_one_or_none()
    if account is None:
        account = StaffAccount(username=f"slack:{slack_user_id.lower()}", display_name=display_name or slack_user_id,
                               slack_user_id=slack_user_id, role="staff", active=True)
        session.add(account)
        session.flush()
        audit.record(session, "staff.created", subject_type="staff", subject_id=account.id, data={"via": "slack"})
    return account


def command_scope(session: Session, username: str | None, catalog: Any) -> set[str] | None:
    """The programs a command run `--staff USERNAME` may read or change (None = every program: an admin, or
    the operator at the shell when no account is named). An unknown or disabled account is refused."""

    if username is None:
        return None
    account = session.execute(select(StaffAccount).where(
        StaffAccount.username == normalize_username(username))).scalar_one_or_none()
    if account is None or not account.active:
        raise StaffError(f"スタッフ {username} はいません（または無効です）")
    return staff_programs(account, catalog)
