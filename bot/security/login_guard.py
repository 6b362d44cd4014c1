"""The console's login limits: tries per user name and per client address in a 15-minute window.

Every attempt is counted (atomically, in the database) before the password is checked, so parallel
guesses cannot slip through between a count and a check; a successful login takes its own count back,
so the counters hold failures. The user name is normalized first: `Bob`, `BOB` and ` bob` share one
counter.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from bot.security import throttle
from bot.security.usernames import normalize_username
from bot.services import Services

WINDOW = timedelta(minutes=15)


def _keys(username: str, client_ip: str) -> tuple[str, str]:
    return f"login:user:{normalize_username(username)[:80]}", f"login:ip:{client_ip}"


def admit(services: Services, username: str, client_ip: str) -> bool:
    """Count this attempt; False when the user name or the address is over its limit (refuse it unchecked)."""
    user_key, ip_key = _keys(username, client_ip)
    settings = services.settings
    with services.db.session() as session:
        by_user = throttle.hit(session, user_key, WINDOW)
        by_ip = throttle.hit(session, ip_key, WINDOW)
    return by_user <= settings.limits.login_failures_per_user and by_ip <= settings.limits.login_failures_per_ip


def succeeded(services: Services, username: str, client_ip: str) -> None:
    """A right password: its attempt is not a failure."""
    with services.db.session() as session:
        for key in _keys(username, client_ip):
            session.execute(text("UPDATE throttle_counters SET count = count - 1 WHERE key = :k AND count > 0"),
                            {"k": key})
