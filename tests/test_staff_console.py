"""The staff console: HTTP tests for login, sessions and CSRF, and the whole loop in a real browser."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from bot.engine import Engine
from bot.messages import InboundMessage
from bot.services import Services
from bot.settings import Settings
from handlers.escalation.staff import create as create_staff
from bot.security.models import ThrottleCounter
from bot.storage.models import AuditEvent
from handlers.escalation.models import SavedReply, Ticket, TicketMessage
from integrations.web import create_app
from tests.conftest import LiveServer, make_settings

PASSWORD = "correct horse battery staple"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def open_ticket(services: Services, user: str, question: str) -> int:
    engine = Engine(services)
    engine.handle(InboundMessage(channel="web", external_user_id=user, text="担当者と話したい"))
    engine.handle(InboundMessage(channel="web", external_user_id=user, text=question))
    with services.db.session() as session:
        return session.execute(select(Ticket.id).where(Ticket.question == question)).scalar_one()


@pytest.fixture
def console(tmp_path: Path, database_url: str | None) -> Iterator[tuple[Services, str]]:
    services = Services.create(make_settings(tmp_path, database_url, staff__cookie_secure=False))
    with services.db.session() as session:
        create_staff(session, "yamada", "山田", PASSWORD)
    with LiveServer(create_app(services)) as server:
        yield services, server.url
    services.close()


def after_login(client: httpx.Client, response: httpx.Response) -> httpx.Response:
    """A refused login is a 303 back to the form (post/redirect/get): the page it leads to says why, with the
    refusal's status (401, 429). A successful login (303 to the console) is returned as it is."""
    if response.status_code == 303 and response.headers["location"] == "/staff/login":
        return client.get(response.url.join("/staff/login"))
    return response


def login(client: httpx.Client, url: str, password: str = PASSWORD) -> httpx.Response:
    token = csrf_of(client.get(f"{url}/staff/login").text)
    return after_login(client, client.post(f"{url}/staff/login",
                                           data={"username": "yamada", "password": password, "csrf": token}))


def test_nothing_is_visible_or_possible_without_logging_in(console: tuple[Services, str]) -> None:
    services, url = console
    ticket_id = open_ticket(services, "c-user", "見られてはいけない相談")
    with httpx.Client() as client:
        for path in ("/staff", f"/staff/tickets/{ticket_id}", "/staff/dashboard", "/staff/faq"):
            response = client.get(f"{url}{path}")
            assert response.status_code == 303 and response.headers["location"] == "/staff/login", path
            assert "見られてはいけない" not in response.text
        token = csrf_of(client.get(f"{url}/staff/login").text)  # a pre-login session with a CSRF token
        for action in ("claim", "reply", "resolve", "close", "faq"):
            response = client.post(f"{url}/staff/tickets/{ticket_id}/{action}", data={"csrf": token, "text": "x"})
            assert response.status_code == 303 and response.headers["location"] == "/staff/login"
    with services.db.session() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket.status == "open" and ticket.assignee_id is None
        assert session.execute(select(func.count()).select_from(TicketMessage).where(
            TicketMessage.author == "staff")).scalar_one() == 0


def test_login_csrf_and_lockout(console: tuple[Services, str]) -> None:
    services, url = console
    ticket_id = open_ticket(services, "c-user2", "ログインのテスト")
    with httpx.Client() as client:
        assert client.post(f"{url}/staff/login", data={"username": "yamada", "password": PASSWORD,
                                                       "csrf": "forged"}).status_code == 403
        assert login(client, url, "wrong password").status_code == 401
        response = login(client, url)
        assert response.status_code == 303
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        queue = client.get(f"{url}/staff").text
        assert "T-" in queue and "ログインのテスト" in queue
        page = client.get(f"{url}/staff/tickets/{ticket_id}").text
        assert client.post(f"{url}/staff/tickets/{ticket_id}/claim", data={"csrf": "forged"}).status_code == 403
        claimed = client.post(f"{url}/staff/tickets/{ticket_id}/claim", data={"csrf": csrf_of(page)})
        assert claimed.status_code == 303
        assert "担当になりました" in client.get(f"{url}/staff/tickets/{ticket_id}").text
    with httpx.Client() as attacker:
        for _ in range(4):  # with the one wrong password above: five failures within 15 minutes
            assert login(attacker, url, "guess").status_code == 401
        locked = login(attacker, url)  # even the right password, for a while
        assert locked.status_code == 429 and "しばらくログインできません" in locked.text


def test_a_refused_login_is_post_redirect_get_like_every_console_form(console: tuple[Services, str]) -> None:
    """Every console form answers its POST with a 303 to a page, except a refused login, which rendered the form
    as the POST's answer (401, 429): reloading it sent the password again and counted one more failure toward
    the lockout. Now it is a 303 back to the form, which says why once, with the refusal's status."""
    services, url = console
    with httpx.Client(base_url=url) as client:
        token = csrf_of(client.get("/staff/login").text)
        refused = client.post("/staff/login", data={"username": "yamada", "password": "wrong", "csrf": token})
        assert refused.status_code == 303 and refused.headers["location"] == "/staff/login"
        shown = client.get("/staff/login")  # where the browser goes
        assert shown.status_code == 401 and "パスワードが違います" in shown.text and 'value="yamada"' in shown.text
        reloaded = client.get("/staff/login")  # a reload is a GET: nothing is sent again, the message is gone
        assert reloaded.status_code == 200 and "パスワードが違います" not in reloaded.text
        with services.db.session() as session:
            failures = session.execute(select(ThrottleCounter.count).where(
                ThrottleCounter.key.like("login:%"))).scalars().all()
        assert failures and set(failures) == {1}  # one refused login, counted once
        assert login(client, url).status_code == 303  # and the form still logs in


def test_the_session_cookie_is_secure_by_default(tmp_path: Path) -> None:
    services = Services.create(Settings(data_dir=tmp_path / "secure"))
    with LiveServer(create_app(services)) as server, httpx.Client() as client:
        cookie = client.get(f"{server.url}/staff/login").headers["set-cookie"]
    assert "secure" in cookie.lower() and "httponly" in cookie.lower()
    services.close()

# The whole loop in a real browser (claim, reply, FAQ, resolve, next ticket, dashboard) is in
# tests/test_staff_inbox_browser.py, with the other browser tests of the console.


def test_saved_replies_move_from_their_json_file_into_a_table_and_keep_their_data(
        tmp_path: Path, database_url: str | None) -> None:
    """Saved replies were a JSON file in the data dir (no transaction, no audit, lost by a database-only
    restore). Migration 0010 makes them a table and copies the file's entries in; the console's forms then
    change the rows (post/redirect/get); a downgrade writes them back to the file."""
    from alembic import command

    from bot.storage.db import Database

    settings = make_settings(tmp_path, database_url, staff__cookie_secure=False)
    settings.ensure_dirs()
    kept = settings.data_dir / "staff" / "saved_replies.json"
    kept.parent.mkdir(parents=True)
    kept.write_text(json.dumps([{"title": "受付時間", "text": "平日9時から17時です。"},
                                {"title": "=危険", "text": "古い本文"}, {"title": "=危険", "text": "新しい本文"},
                                {"title": "", "text": "題名なし"}, "壊れた行"], ensure_ascii=False), encoding="utf-8")
    db = Database(settings.resolved_database_url)
    cfg = db.alembic_config(settings.data_dir)
    with db.engine.begin() as connection:  # an installation at the previous head, with its file
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0009")
    db.migrate(settings.data_dir)
    db.dispose()
    assert not kept.exists() and kept.with_name("saved_replies.json.imported").exists()

    services = Services.create(settings)
    with services.db.session() as session:
        create_staff(session, "yamada", "山田", PASSWORD)

    def stored() -> dict[str, str]:
        with services.db.session() as session:
            return dict(session.execute(select(SavedReply.title, SavedReply.text)).all())

    assert stored() == {"受付時間": "平日9時から17時です。", "=危険": "新しい本文"}
    with LiveServer(create_app(services)) as server, httpx.Client(base_url=server.url) as client:
        login(client, server.url)
        page = client.get("/staff/saved-replies")
        assert "受付時間" in page.text and "平日9時から17時です。" in page.text
        token = csrf_of(page.text)
        saved = client.post("/staff/saved-replies", data={"csrf": token, "title": "締切", "text": "2月26日です。"})
        assert saved.status_code == 303 and saved.headers["location"] == "/staff/saved-replies"  # PRG
        changed = client.post("/staff/saved-replies", data={"csrf": token, "title": "受付時間", "text": "9時-18時"})
        assert changed.status_code == 303
        gone = client.post("/staff/saved-replies/delete", data={"csrf": token, "title": "=危険"})
        assert gone.status_code == 303 and gone.headers["location"] == "/staff/saved-replies"
        assert "締切" in client.get("/staff/saved-replies").text
    assert stored() == {"受付時間": "9時-18時", "締切": "2月26日です。"}
    with services.db.session() as session:
        actions = [a for (a,) in session.execute(select(AuditEvent.action).where(
            AuditEvent.action.like("staff.saved_reply%")).order_by(AuditEvent.id)).all()]
    assert actions == ["staff.saved_reply_saved", "staff.saved_reply_saved", "staff.saved_reply_deleted"]
    services.close()

    db = Database(settings.resolved_database_url)
    cfg = db.alembic_config(settings.data_dir)
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0009")
    assert json.loads(kept.read_text(encoding="utf-8")) == [{"title": "受付時間", "text": "9時-18時"},
                                                            {"title": "締切", "text": "2月26日です。"}]
    db.migrate(settings.data_dir)  # and up again: the same rows
    with db.engine.connect() as connection:
        rows = connection.execute(select(SavedReply.title, SavedReply.text).order_by(SavedReply.id)).all()
    assert [tuple(r) for r in rows] == [("受付時間", "9時-18時"), ("締切", "2月26日です。")]
    db.dispose()
