"""The web chat's identity (issue 20, findings 5 and 6): a server-issued session in an HttpOnly,
SameSite cookie; a body `user_id` only with a `chat` token; no identifier in any URL; a code in a link
is shown, never sent by the page on its own. Real HTTP and a real browser."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update

from bot.security.api_tokens import create as create_token
from bot.messages import Reply
from bot.outbox import queue
from bot.security.models import ThrottleCounter, WebSession
from bot.services import Services
from bot.storage.models import ChannelIdentity, Message
from integrations.channels import build_worker, purge_web_sessions
from integrations.web import create_app
from tests.conftest import CHAT_HEADERS, CHAT_TOKEN, LiveServer, eventually, make_settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[Services, str]]:
    services = Services.create(make_settings(tmp_path, staff__api_token=CHAT_TOKEN))
    with LiveServer(create_app(services)) as server:
        yield services, server.url
    services.close()


def _inbound(services: Services) -> list[str]:
    with services.db.session() as session:
        return list(session.execute(select(Message.text).where(Message.direction == "in").order_by(Message.id))
                    .scalars())


def _visitors(services: Services) -> list[str]:
    with services.db.session() as session:
        return list(session.execute(select(WebSession.external_user_id)).scalars())


def _person_of(services: Services, external_user_id: str) -> int | None:
    with services.db.session() as session:
        return session.execute(select(ChannelIdentity.person_id).where(
            ChannelIdentity.external_user_id == external_user_id)).scalar_one_or_none()


def _queue_for(services: Services, external_user_id: str, text: str) -> None:
    """Queue a reply for the visitor once the server has stored who they are: the page shows the visitor's
    own message before the server has answered it, so the identity may not exist yet when this is called."""
    person_id = eventually(lambda: _person_of(services, external_user_id))
    with services.db.session() as session:
        queue(session, person_id, "web", external_user_id, [Reply(text=text)])


def test_the_page_session_is_a_server_issued_httponly_cookie(web: tuple[Services, str]) -> None:
    services, url = web
    with httpx.Client(base_url=url) as alice:
        opened = alice.post("/api/chat/session")  # the page opens its session before its first message
        cookie = opened.headers["set-cookie"].lower()
        assert cookie.startswith("madoguchi_chat=") and "httponly" in cookie and "samesite=strict" in cookie
        alice.headers["X-CSRF-Token"] = opened.json()["csrf"]
        first = alice.post("/api/chat", json={"text": "メニュー"})
        assert first.status_code == 200
        assert "web-" not in first.text + opened.text  # the identity is never shown to the page
        assert alice.post("/api/chat", json={"text": "ヘルプ"}).status_code == 200
        assert "set-cookie" not in alice.post("/api/chat", json={"text": "ヘルプ"}).headers
        with services.db.session() as session:
            alice_id = session.execute(select(WebSession.external_user_id)).scalar_one()
            people = session.execute(select(func.count()).select_from(ChannelIdentity)).scalar_one()
        assert people == 1  # three messages, one visitor

        _queue_for(services, alice_id, "担当者からの回答です")
        with httpx.Client(base_url=url) as mallory:  # knows alice's id, has no cookie of hers
            assert mallory.get("/api/chat/pending", params={"user_id": alice_id}).status_code == 403  # no session
            stolen = mallory.post("/api/chat", json={"user_id": alice_id, "text": "戻る"})
            assert stolen.status_code == 401 and stolen.json()["error"] == "user_id_needs_token"
            assert mallory.post("/api/chat/pending", json={"user_id": alice_id}).status_code == 401
        assert [r["text"] for r in alice.get("/api/chat/pending").json()["replies"]] == ["担当者からの回答です"]
    assert _inbound(services) == ["メニュー", "ヘルプ", "ヘルプ"]


def test_a_page_request_that_changes_something_needs_the_sessions_csrf_token(web: tuple[Services, str]) -> None:
    """The web chat's cookie session relied on SameSite=Strict and a JSON body alone. Now the page gets a
    per-session token from the server (with its history) and sends it in X-CSRF-Token; a message or taking
    the pending ones without it, or with another session's, is 403 and changes nothing."""
    services, url = web
    with httpx.Client(base_url=url) as alice, httpx.Client(base_url=url) as mallory:
        alice_token = alice.post("/api/chat/session").json()["csrf"]
        mallory_token = mallory.post("/api/chat/session").json()["csrf"]
        assert alice_token and mallory_token and alice_token != mallory_token
        for headers in ({}, {"X-CSRF-Token": ""}, {"X-CSRF-Token": mallory_token}, {"X-CSRF-Token": "x" * 64}):
            refused = alice.post("/api/chat", json={"text": "メニュー"}, headers=headers)
            assert refused.status_code == 403 and refused.json()["error"] == "csrf", headers
            assert alice.get("/api/chat/pending", headers=headers).status_code == 403, headers
        # JSON sent as a form would send it (text/plain, the one a cross-site form can make): refused too
        forged = alice.post("/api/chat", content='{"text": "メニュー"}', headers={"Content-Type": "text/plain"})
        assert forged.status_code in (403, 422)
        assert _inbound(services) == []
        assert alice.get("/api/chat/history").json()["csrf"] == alice_token  # one token per session
        assert alice.post("/api/chat/session").json()["csrf"] == alice_token
        assert alice.post("/api/chat", json={"text": "メニュー"}, headers={"X-CSRF-Token": alice_token}).status_code == 200
        assert alice.get("/api/chat/pending", headers={"X-CSRF-Token": alice_token}).status_code == 200
    with httpx.Client(base_url=url) as nobody:  # no session at all: there is nothing to send as
        assert nobody.post("/api/chat", json={"text": "メニュー"}, headers={"X-CSRF-Token": alice_token}).status_code == 403
    with services.db.session() as session:  # the stored hash does not give the token away
        assert alice_token not in set(session.execute(select(WebSession.token_hash)).scalars())
    assert _inbound(services) == ["メニュー"]


def test_reading_the_chat_makes_no_session_and_new_sessions_are_limited_per_address_and_overall(
        tmp_path: Path, database_url: str | None) -> None:
    """Every cookieless request for the history made a server-side session, with no limit and no purge: anyone
    could fill the table. Now only the page's first message opens one (`POST /api/chat/session`), at most
    `web_sessions_per_ip` per address and `web_sessions_global` overall per hour (then 429 with Retry-After)."""
    services = Services.create(make_settings(tmp_path, database_url, limits__web_sessions_per_ip=3,
                                             limits__web_sessions_global=5))
    with LiveServer(create_app(services)) as server:
        for path in ("/", "/api/chat/history", "/api/chat/welcome", "/api/chat/events", "/api/chat/pending"):
            for _ in range(5):
                answer = httpx.get(server.url + path, timeout=30)
                assert "set-cookie" not in answer.headers, path
        assert httpx.get(f"{server.url}/api/chat/history", timeout=30).json()["csrf"] is None
        assert _visitors(services) == []

        def start(address: str) -> httpx.Response:
            return httpx.post(f"{server.url}/api/chat/session", headers={"X-Forwarded-For": address}, timeout=30)

        opened = [start("198.51.100.1") for _ in range(4)]
        assert [r.status_code for r in opened] == [200, 200, 200, 429]
        refused = opened[-1]
        assert refused.json()["error"] == "rate_limited" and "set-cookie" not in refused.headers
        assert 1 <= int(refused.headers["retry-after"]) <= 3601
        assert [start("198.51.100.2").status_code for _ in range(3)] == [200, 200, 429]  # five from anyone
        assert len(_visitors(services)) == 5
        with httpx.Client(base_url=server.url, timeout=30) as alice:  # a live session is given back, not counted
            first = alice.post("/api/chat/session", headers={"X-Forwarded-For": "198.51.100.1"})
            assert first.status_code == 429
        with services.db.session() as session:
            session.query(ThrottleCounter).delete()
        with httpx.Client(base_url=server.url, timeout=30) as alice:
            csrf = alice.post("/api/chat/session").json()["csrf"]
            assert [alice.post("/api/chat/session").json()["csrf"] for _ in range(4)] == [csrf] * 4
            assert alice.post("/api/chat", json={"text": "メニュー"}, headers={"X-CSRF-Token": csrf}).status_code == 200
        assert len(_visitors(services)) == 6
    services.close()


def test_dead_web_sessions_are_purged_by_the_worker(tmp_path: Path, database_url: str | None) -> None:
    """Sessions stayed forever. The delivery worker's hourly task now deletes the expired ones and those idle
    a day that never talked; a session someone talks through stays for its cookie's life."""
    services = Services.create(make_settings(tmp_path, database_url, web__session_days=30))
    with LiveServer(create_app(services)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as talker:
            csrf = talker.post("/api/chat/session").json()["csrf"]
            assert talker.post("/api/chat", json={"text": "メニュー"}, headers={"X-CSRF-Token": csrf}).status_code == 200
        for _ in range(3):
            assert httpx.post(f"{server.url}/api/chat/session", timeout=30).status_code == 200
    talked = eventually(lambda: [v for v in _visitors(services) if _person_of(services, v)] or None)
    silent = sorted(set(_visitors(services)) - set(talked))
    assert len(talked) == 1 and len(silent) == 3
    now = datetime.now(UTC).replace(tzinfo=None)
    ages = {silent[0]: timedelta(hours=2), silent[1]: timedelta(hours=25), silent[2]: timedelta(days=31)}
    with services.db.session() as session:
        for visitor, age in ages.items():
            session.execute(update(WebSession).where(WebSession.external_user_id == visitor)
                            .values(last_seen_at=now - age))
        session.execute(update(WebSession).where(WebSession.external_user_id == talked[0])
                        .values(last_seen_at=now - timedelta(days=20)))
    worker = build_worker(services, senders={})
    assert sum(task() for task in worker.tasks) >= 2
    assert sorted(_visitors(services)) == sorted([talked[0], silent[0]])
    with services.db.session() as session:
        session.execute(update(WebSession).values(last_seen_at=now - timedelta(days=31)))
    assert purge_web_sessions(services) == 2 and _visitors(services) == []
    services.close()


def test_a_body_user_id_needs_a_token_of_scope_chat(web: tuple[Services, str]) -> None:
    services, url = web
    with services.db.session() as session:
        _, reader = create_token(session, "hearings only", ["hearings:read"])
        _, chat = create_token(session, "chat integration", ["chat"])
    body = {"user_id": "integration-user", "text": "メニュー"}
    assert httpx.post(f"{url}/api/chat", json=body).status_code == 401
    assert httpx.post(f"{url}/api/chat", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.post(f"{url}/api/chat", json=body, headers={"Authorization": f"Bearer {reader}"}).status_code == 403
    assert httpx.post(f"{url}/api/chat", json=body, headers={"Authorization": f"Bearer {chat}"}).status_code == 200
    assert httpx.post(f"{url}/api/chat", json=body, headers=CHAT_HEADERS).status_code == 200
    assert _inbound(services) == ["メニュー", "メニュー"]


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("MADOGUCHI_REQUIRE_BROWSER"),
                    reason="Debian's chromium is not installed (make test / CI install it)")
def test_the_page_in_a_real_browser_uses_its_cookie_and_never_sends_a_linked_code_on_its_own(
        web: tuple[Services, str], browser: Any) -> None:
    from playwright.sync_api import expect

    services, url = web
    # One Chromium per test session (the `browser` fixture in tests/conftest.py).
    context = browser.new_context()
    page = context.new_page()
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(url)
    expect(page.locator(".msg.bot").first).to_contain_text("こんにちは")
    page.wait_for_selector("body[data-ready='1']")
    assert not context.cookies() and not _visitors(services)  # reading the page makes no session
    page.get_by_label("メッセージ").fill("ヘルプ")  # the page sends nothing by itself: the visitor writes first
    page.get_by_label("メッセージ").press("Enter")
    expect(page.locator(".msg.me")).to_have_text("ヘルプ")
    expect(page.locator(".msg.bot")).to_have_count(2)  # the welcome, then the server's answer to ヘルプ
    expect(page.locator(".msg.bot").last).to_contain_text("こんにちは")
    assert "madoguchi_chat" not in page.evaluate("document.cookie")  # HttpOnly: no script sees it
    assert any(c["name"] == "madoguchi_chat" and c["httpOnly"] and c["sameSite"] == "Strict"
           for c in context.cookies())
    [visitor] = _visitors(services)
    _queue_for(services, visitor, "訪問の確認をお願いします")  # a live update for this visitor
    expect(page.get_by_text("訪問の確認をお願いします")).to_be_visible()  # delivered by server-sent events

    before = _inbound(services)
    page.goto(f"{url}/?code=ABCD-2345")
    expect(page.get_by_role("button", name="送信する")).to_be_visible()
    time.sleep(1.0)
    assert _inbound(services) == before  # the link made the browser say nothing
    page.get_by_role("button", name="送信しない").click()
    expect(page.locator(".msg.bot").last).to_contain_text("送信しませんでした")
    assert "ABCD-2345" not in _inbound(services) and "ABCD2345" not in "".join(_inbound(services))
    page.goto(f"{url}/?code=ABCD-2345")
    page.get_by_role("button", name="送信する").click()
    expect(page.locator(".msg.me").last).to_have_text("ABCD-2345")
    assert eventually(lambda: _inbound(services)[-1] == "ABCD-2345" or None)
    page.goto(f"{url}/?code=%3Cimg%20src%3Dx%3E")  # not a code: nothing shown, nothing sent
    expect(page.locator(".msg.bot").first).to_contain_text("こんにちは")
    assert page.get_by_role("button", name="送信する").count() == 0
    context.close()
    assert not [u for u in urls if "user_id" in u or visitor in u], urls
    with services.db.session() as session:
        assert session.execute(select(func.count()).select_from(ChannelIdentity)).scalar_one() == 1


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("MADOGUCHI_REQUIRE_BROWSER"),
                    reason="Debian's chromium is not installed (make test / CI install it)")
def test_the_page_sends_its_csrf_token_and_a_request_without_it_is_refused_in_a_browser(
        web: tuple[Services, str], browser: Any) -> None:
    """In Chromium: the page's messages carry the session's token (as a header, never in a URL); the same
    request from the same browser and cookie without it is 403; a session that ended is renewed by the page."""
    from playwright.sync_api import expect

    services, url = web
    context = browser.new_context()
    page = context.new_page()
    sent: list[dict[str, str]] = []
    page.on("request", lambda r: sent.append(r.headers) if r.url.endswith("/api/chat") and r.method == "POST" else None)
    page.goto(url)
    page.get_by_label("メッセージ").fill("ヘルプ")
    page.get_by_label("メッセージ").press("Enter")
    # the welcome already says こんにちは: wait for the second bot bubble, the server's answer to ヘルプ
    expect(page.locator(".msg.bot")).to_have_count(2)
    expect(page.locator(".msg.bot").last).to_contain_text("こんにちは")
    assert len(sent) == 1 and len(sent[0].get("x-csrf-token", "")) == 64
    forged = page.evaluate("""async () => {
        const r = await fetch('/api/chat', {method: 'POST', credentials: 'same-origin',
                                            headers: {'Content-Type': 'application/json'},
                                            body: JSON.stringify({text: 'メニュー'})});
        return [r.status, (await r.json()).error];
    }""")
    assert forged == [403, "csrf"]
    assert _inbound(services) == ["ヘルプ"]
    with services.db.session() as session:  # the session ends (as an expired one does)
        session.query(WebSession).delete()
    page.get_by_label("メッセージ").fill("メニュー")
    page.get_by_label("メッセージ").press("Enter")
    expect(page.locator(".msg.me").last).to_have_text("メニュー")
    expect(page.locator(".msg.bot").last).not_to_contain_text("有効期限")
    expect(page.locator(".msg.bot")).to_have_count(3)  # welcome, the answer to ヘルプ, the answer to メニュー
    assert _inbound(services) == ["ヘルプ", "メニュー"] and sent[-1]["x-csrf-token"] != sent[0]["x-csrf-token"]
    context.close()
