"""Console login and sessions under attack (issue 20): user-name variants share one lockout, parallel
guesses are all counted, a per-address limit, and sessions that end on logout, password change,
disabling and idling. Real HTTP against uvicorn, real threads, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text, update

from bot.security.models import StaffSession
from bot.services import Services
from handlers.escalation.staff import create as create_staff
from handlers.escalation.staff import disable, set_password
from bot.storage.models import utcnow
from handlers.escalation.models import StaffAccount
from integrations.web import create_app
from tests.conftest import LiveServer, make_settings
from tests.test_staff_console import after_login, csrf_of

PASSWORD = "correct horse battery staple"


@pytest.fixture
def console(tmp_path: Path, database_url: str | None) -> Iterator[tuple[Services, str]]:
    services = Services.create(make_settings(tmp_path, database_url, staff__cookie_secure=False))
    with services.db.session() as session:
        create_staff(session, "Bob", "ボブ", PASSWORD)
    with LiveServer(create_app(services)) as server:
        yield services, server.url
    services.close()


def login(client: httpx.Client, url: str, username: str, password: str = PASSWORD) -> httpx.Response:
    token = csrf_of(client.get(f"{url}/staff/login").text)
    return after_login(client, client.post(f"{url}/staff/login",
                                           data={"username": username, "password": password, "csrf": token}))


def test_user_name_variants_are_one_account_with_one_lockout(console: tuple[Services, str]) -> None:
    """Finding 3: `Bob`, `BOB`, ` bob` each logged in and got their own five tries."""
    services, url = console
    with services.db.session() as session:
        assert session.execute(select(StaffAccount.username)).scalar_one() == "bob"
    with httpx.Client() as client:
        assert login(client, url, "ＢＯＢ ").status_code == 303  # full-width, trailing space: the same account
    with httpx.Client() as attacker:
        for variant in ("Bob", "BOB", " bob", "bob ", "ｂｏｂ"):
            assert login(attacker, url, variant, "wrong guess").status_code == 401
        for variant in ("Bob", "bob", "BOB"):
            assert login(attacker, url, variant).status_code == 429  # even the right password: locked


def test_parallel_wrong_logins_are_all_counted(console: tuple[Services, str]) -> None:
    """Finding 3: 20 concurrent wrong logins were counted as 1."""
    _, url = console
    barrier = threading.Barrier(20)

    def guess(n: int) -> int:
        with httpx.Client(timeout=60) as client:
            token = csrf_of(client.get(f"{url}/staff/login").text)
            barrier.wait()
            return after_login(client, client.post(f"{url}/staff/login", data={
                "username": "bob", "password": f"guess {n}", "csrf": token})).status_code

    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(guess, range(20)))
    assert codes.count(401) <= 5 and codes.count(429) >= 15, codes
    with httpx.Client() as client:
        assert login(client, url, "bob").status_code == 429


def test_per_address_limit_across_user_names(tmp_path: Path) -> None:
    """Finding 3: one address trying many user names is stopped too."""
    services = Services.create(make_settings(tmp_path, staff__cookie_secure=False, limits__login_failures_per_ip=8))
    with services.db.session() as session:
        create_staff(session, "alice", "アリス", PASSWORD)
    with LiveServer(create_app(services)) as server, httpx.Client() as client:
        codes = [login(client, server.url, f"user{n}", "wrong guess").status_code for n in range(10)]
        assert codes[:8] == [401] * 8 and codes[8:] == [429, 429]
        assert login(client, server.url, "alice").status_code == 429
    services.close()


def _logged_in(url: str, username: str = "bob") -> tuple[httpx.Client, dict[str, str]]:
    client = httpx.Client()
    assert login(client, url, username).status_code == 303
    assert client.get(f"{url}/staff", follow_redirects=False).status_code == 200
    return client, dict(client.cookies)


def _works(url: str, cookies: dict[str, str]) -> bool:
    with httpx.Client(cookies=cookies) as thief:
        return thief.get(f"{url}/staff", follow_redirects=False).status_code == 200


def test_sessions_end_on_logout_password_change_disable_and_idle(console: tuple[Services, str]) -> None:
    """Finding 9: a copied staff cookie kept working after logout and password change (8 h)."""
    services, url = console
    client, copied = _logged_in(url)
    assert _works(url, copied)
    page = client.get(f"{url}/staff").text
    assert client.post(f"{url}/staff/logout", data={"csrf": csrf_of(page)}).status_code == 303
    assert not _works(url, copied)

    client, copied = _logged_in(url)
    with services.db.session() as session:
        account = session.execute(select(StaffAccount)).scalar_one()
        set_password(session, account, "another long password")
    assert not _works(url, copied)

    client = httpx.Client()
    assert login(client, url, "bob", "another long password").status_code == 303
    copied = dict(client.cookies)
    assert _works(url, copied)
    with services.db.session() as session:
        session.execute(update(StaffSession).values(last_seen_at=utcnow() - timedelta(minutes=31)))
    assert not _works(url, copied)

    client = httpx.Client()
    assert login(client, url, "bob", "another long password").status_code == 303
    copied = dict(client.cookies)
    with services.db.session() as session:
        disable(session, session.execute(select(StaffAccount)).scalar_one())
        session.execute(update(StaffAccount).values(active=True))  # re-enabled: the old session stays ended
    assert not _works(url, copied)
    with services.db.session() as session:
        reasons = set(session.execute(text("SELECT ended_reason FROM staff_sessions")).scalars())
    assert {"logout", "password_changed", "disabled"} <= reasons
