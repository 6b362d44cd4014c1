"""The staff console: HTTP tests for login, sessions and CSRF, and the whole loop in a real browser."""

from __future__ import annotations

import os
import re
import shutil
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
from handlers.escalation.models import Ticket, TicketMessage
from integrations.web import create_app
from tests.conftest import LiveServer, make_settings

PASSWORD = "correct horse battery staple"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


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
    services = Services.create(make_settings(tmp_path, database_url, staff_cookie_secure=False))
    with services.db.session() as session:
        create_staff(session, "yamada", "山田", PASSWORD)
    with LiveServer(create_app(services)) as server:
        yield services, server.url
    services.close()


def login(client: httpx.Client, url: str, password: str = PASSWORD) -> httpx.Response:
    token = csrf_of(client.get(f"{url}/staff/login").text)
    return client.post(f"{url}/staff/login", data={"username": "yamada", "password": password, "csrf": token})


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


def test_the_session_cookie_is_secure_by_default(tmp_path: Path) -> None:
    services = Services.create(Settings(MADOGUCHI_DATA_DIR=tmp_path / "secure"))
    with LiveServer(create_app(services)) as server, httpx.Client() as client:
        cookie = client.get(f"{server.url}/staff/login").headers["set-cookie"]
    assert "secure" in cookie.lower() and "httponly" in cookie.lower()
    services.close()


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("MADOGUCHI_REQUIRE_BROWSER"),
                    reason="Debian's chromium is not installed (make test / CI install it)")
def test_the_whole_loop_in_a_real_browser(sample_kb_services: Services) -> None:
    from playwright.sync_api import expect, sync_playwright

    services = sample_kb_services
    services.settings.staff_cookie_secure = False
    with services.db.session() as session:
        create_staff(session, "browser", "ブラウザ太郎", PASSWORD)
    question = "説明会の会場に駐車場はありますか？"
    engine = Engine(services)
    first = engine.handle(InboundMessage(channel="web", external_user_id="b-user", text=question))
    assert "確実にお答えできる情報が見つかりませんでした" in first[0].text
    engine.handle(InboundMessage(channel="web", external_user_id="b-user", choice="contact:human"))
    with services.db.session() as session:
        ticket_id = session.execute(select(Ticket.id).where(Ticket.question == question)).scalar_one()
    answer_text = "説明会の会場には駐車場がありません。公共交通機関をご利用ください。"

    with LiveServer(create_app(services)) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"{server.url}/staff")
        expect(page).to_have_url(f"{server.url}/staff/login")
        page.get_by_label("ユーザー名").fill("browser")
        page.get_by_label("パスワード").fill(PASSWORD)
        page.get_by_role("button", name="ログイン").click()
        expect(page.get_by_role("heading", name="お問い合わせキュー")).to_be_visible()
        page.get_by_role("link", name=f"T-{ticket_id:06d}").click()
        expect(page.get_by_text(question).first).to_be_visible()
        page.get_by_role("button", name="担当する").click()
        expect(page.locator("#assignee")).to_have_text("ブラウザ太郎")
        page.get_by_label("回答（利用者のチャットに届きます）").fill(answer_text)
        page.get_by_role("button", name="回答を送る").click()
        expect(page.get_by_role("status")).to_contain_text("回答を送りました")
        page.get_by_role("button", name="FAQ候補にする").click()
        expect(page.get_by_role("status")).to_contain_text("FAQ候補にしました")
        page.get_by_role("button", name="解決にする").click()
        expect(page.get_by_role("status")).to_contain_text("満足度アンケート")

        # The user got the answer and the survey on their own channel, and rates the help.
        pending = httpx.get(f"{server.url}/api/chat/pending", params={"user_id": "b-user"}).json()["replies"]
        assert answer_text in pending[0]["text"] and "いかがでしたか" in pending[-1]["text"]
        rate = httpx.post(f"{server.url}/api/chat", json={"user_id": "b-user", "choice": pending[-1]["options"][1]["value"]})
        assert "ご評価ありがとうございました" in rate.json()["replies"][0]["text"]

        # Staff publish the answer as an FAQ; the next user is answered without a person.
        page.get_by_role("link", name="FAQ候補").click()
        page.get_by_role("button", name="公開する").first.click()
        expect(page.get_by_role("status")).to_contain_text("公開しました")
        page.get_by_role("link", name="ダッシュボード").click()
        expect(page.locator("#first")).not_to_have_text("－")
        page.get_by_role("button", name="ログアウト").click()
        expect(page).to_have_url(f"{server.url}/staff/login")
        page.goto(f"{server.url}/staff")
        expect(page).to_have_url(f"{server.url}/staff/login")
        browser.close()

    next_user = engine.handle(InboundMessage(channel="web", external_user_id="b-next", text=question))
    assert "駐車場がありません" in next_user[0].text and "事務局回答FAQ" in next_user[0].text
    with services.db.session() as session:
        ticket = session.execute(select(Ticket).where(Ticket.question == question)).scalar_one()
        assert ticket.status == "resolved" and ticket.satisfaction == 4
