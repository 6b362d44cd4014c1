"""The web chat's identity (issue 20, findings 5 and 6): a server-issued session in an HttpOnly,
SameSite cookie; a body `user_id` only with a `chat` token; no identifier in any URL; a code in a link
is shown, never sent by the page on its own. Real HTTP and a real browser."""

from __future__ import annotations

import os
import shutil
import time
from typing import Any
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from bot.security.api_tokens import create as create_token
from bot.messages import Reply
from bot.outbox import queue
from bot.security.models import WebSession
from bot.services import Services
from bot.storage.models import ChannelIdentity, Message
from integrations.web import create_app
from tests.conftest import CHAT_HEADERS, CHAT_TOKEN, LiveServer, make_settings

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


def _queue_for(services: Services, external_user_id: str, text: str) -> None:
    with services.db.session() as session:
        identity = session.execute(select(ChannelIdentity).where(
            ChannelIdentity.external_user_id == external_user_id)).scalar_one()
        queue(session, identity.person_id, "web", external_user_id, [Reply(text=text)])


def test_the_page_session_is_a_server_issued_httponly_cookie(web: tuple[Services, str]) -> None:
    services, url = web
    with httpx.Client(base_url=url) as alice:
        first = alice.post("/api/chat", json={"text": "メニュー"})
        assert first.status_code == 200
        cookie = first.headers["set-cookie"].lower()
        assert cookie.startswith("madoguchi_chat=") and "httponly" in cookie and "samesite=strict" in cookie
        assert "web-" not in first.text  # the identity is never shown to the page
        assert alice.post("/api/chat", json={"text": "ヘルプ"}).status_code == 200
        assert "set-cookie" not in alice.post("/api/chat", json={"text": "ヘルプ"}).headers
        with services.db.session() as session:
            alice_id = session.execute(select(WebSession.external_user_id)).scalar_one()
            people = session.execute(select(func.count()).select_from(ChannelIdentity)).scalar_one()
        assert people == 1  # three messages, one visitor

        _queue_for(services, alice_id, "担当者からの回答です")
        with httpx.Client(base_url=url) as mallory:  # knows alice's id, has no cookie of hers
            assert mallory.get("/api/chat/pending", params={"user_id": alice_id}).json()["replies"] == []
            stolen = mallory.post("/api/chat", json={"user_id": alice_id, "text": "戻る"})
            assert stolen.status_code == 401 and stolen.json()["error"] == "user_id_needs_token"
            assert mallory.post("/api/chat/pending", json={"user_id": alice_id}).status_code == 401
        assert [r["text"] for r in alice.get("/api/chat/pending").json()["replies"]] == ["担当者からの回答です"]
    assert _inbound(services) == ["メニュー", "ヘルプ", "ヘルプ"]


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
    assert "madoguchi_chat" not in page.evaluate("document.cookie")  # HttpOnly: no script sees it
    assert any(c["name"] == "madoguchi_chat" and c["httpOnly"] and c["sameSite"] == "Strict"
           for c in context.cookies())
    with services.db.session() as session:
        visitor = session.execute(select(WebSession.external_user_id)).scalar_one()
    page.get_by_label("メッセージ").fill("ヘルプ")  # the page sends nothing by itself: the visitor writes first
    page.get_by_label("メッセージ").press("Enter")
    expect(page.locator(".msg.me")).to_have_text("ヘルプ")
    expect(page.locator(".msg.bot").last).to_contain_text("こんにちは")
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
    expect(page.locator(".msg.bot").last).to_contain_text("コード")
    assert _inbound(services)[-1] == "ABCD-2345"
    page.goto(f"{url}/?code=%3Cimg%20src%3Dx%3E")  # not a code: nothing shown, nothing sent
    expect(page.locator(".msg.bot").first).to_contain_text("こんにちは")
    assert page.get_by_role("button", name="送信する").count() == 0
    context.close()
    assert not [u for u in urls if "user_id" in u or visitor in u], urls
    with services.db.session() as session:
        assert session.execute(select(func.count()).select_from(ChannelIdentity)).scalar_one() == 1
