"""The web chat's and the console's pages over real HTTP: no inline code (so the CSP can forbid it), the
conversation history and live events of the chat, the console's upload limit and the dashboard's rates."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bot.engine import Engine
from bot.messages import InboundMessage, Reply
from bot.outbox import queue
from bot.services import Services
from bot.storage.models import ChannelIdentity
from handlers.escalation.staff import create as create_staff
from integrations.web import create_app
from tests.conftest import LiveServer, make_settings
from tests.security_helpers import chunked_post, declared_post

PASSWORD = "correct horse battery staple"
INLINE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=", re.IGNORECASE)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Services, str]]:
    services = Services.create(make_settings(tmp_path, staff__cookie_secure=False))
    with services.db.session() as session:
        create_staff(session, "pages", "頁太郎", PASSWORD, role="admin")
    with LiveServer(create_app(services)) as server:
        yield services, server.url
    services.close()


@contextmanager
def staff_client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as client:
        token = csrf(client.get("/staff/login").text)
        login = client.post("/staff/login", data={"username": "pages", "password": PASSWORD, "csrf": token})
        assert login.status_code == 303
        yield client


def csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def test_no_page_has_inline_scripts_or_styles(site: tuple[Services, str]) -> None:
    services, url = site
    Engine(services).handle(InboundMessage(channel="web", external_user_id="p-1", text="担当者と話したい"))
    Engine(services).handle(InboundMessage(channel="web", external_user_id="p-1", text="相談したいことがあります"))
    pages = {path: httpx.get(f"{url}{path}").text for path in ("/", "/docs", "/staff/login",
                                                                "/sources/view?source=x&section=y")}
    with staff_client(url) as client:
        for path in ("/staff", "/staff/tickets/1", "/staff/dashboard", "/staff/knowledge", "/staff/faq",
                     "/staff/saved-replies"):
            response = client.get(path)
            assert response.status_code == 200, path
            pages[path] = response.text
    for path, html in pages.items():
        assert not INLINE.search(html), (path, INLINE.search(html))
    assert "cdn" not in pages["/docs"].lower() and "/static/vendor/swagger-ui/" in pages["/docs"]
    assert httpx.get(f"{url}/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200


def test_history_is_in_order_with_labels_and_events_deliver_once(site: tuple[Services, str]) -> None:
    services, url = site
    with httpx.Client(base_url=url, timeout=30) as page:
        first = page.get("/api/chat/history").json()
        assert first["items"] == [] and first["flow"] is None  # a new visitor: the page shows its first screen
        page.headers["X-CSRF-Token"] = page.post("/api/chat/session").json()["csrf"]  # as chat.js does
        welcome = page.get("/api/chat/welcome").json()
        assert welcome["text"].startswith("こんにちは") and welcome["options"]
        page.post("/api/chat", json={"choice": "hearing:start"})
        page.post("/api/chat", json={"text": "株式会社テスト"})
        items = page.get("/api/chat/history").json()
        said = [(i["who"], i["text"][:12]) for i in items["items"]]
        assert said[0][0] == "bot" and said[1] == ("me", "ヒアリングシートに回答す")  # the label, not hearing:start
        assert said[-2] == ("me", "株式会社テスト") and "法人番号" in items["items"][-1]["text"]
        assert [i["live"] for i in items["items"]].count(True) == 1 and items["items"][-1]["live"]
        assert items["flow"] == "hearing"

        with services.db.session() as session:
            visitor = session.query(ChannelIdentity).filter_by(channel="web").one()
            queue(session, visitor.person_id, "web", visitor.external_user_id, [Reply(text="担当者からのお知らせ")])
        with page.stream("GET", "/api/chat/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            data = None
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    data = json.loads(line[6:])
                    break
        assert data["replies"][0]["text"] == "担当者からのお知らせ"
        again = page.get("/api/chat/history").json()["items"]
        assert again[-1]["text"].startswith("【") and again[-1].get("again")  # the pending question, again
        assert any(i["text"] == "担当者からのお知らせ" for i in again)


def test_only_the_console_upload_may_send_more_than_64_kb(site: tuple[Services, str]) -> None:
    _, url = site
    big = b"x" * (200 * 1024)
    with staff_client(url) as client:
        token = csrf(client.get("/staff/knowledge").text)
        response = client.post("/staff/knowledge/upload", data={"csrf": token},
                               files={"file": ("big.txt", big + "\n。説明".encode(), "text/plain")})
        assert response.status_code != 413, response.text
        assert client.post("/staff/saved-replies", data={"csrf": token, "title": "x", "text": "y" * 100_000}
                           ).status_code == 413


def _cookie(client: httpx.Client) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in client.cookies.items())}


def test_the_upload_limit_is_only_for_an_admin_session_within_its_budget(tmp_path: Path) -> None:
    """#21's console upload had its 20 MB limit before the login check: anyone could make the server read
    20 MB there. Now only a live admin session gets it, decided before any byte of the body is read, within a
    per-address and per-account hourly budget; everyone else has the 64 KB limit there too."""
    services = Services.create(make_settings(tmp_path, staff__cookie_secure=False, limits__upload_mb_per_hour=1))
    with services.db.session() as session:
        create_staff(session, "pages", "頁太郎", PASSWORD, role="admin")
        create_staff(session, "clerk", "係員", PASSWORD, role="staff")
    twenty_mb = 20 * 1024 * 1024
    with LiveServer(create_app(services)) as server:
        url = server.url
        # No session: 413 at once on the declared length, and a chunked body is cut at 64 KB.
        assert declared_post(url, "/staff/knowledge/upload", twenty_mb) == 413
        status, seconds = chunked_post(url, "/staff/knowledge/upload", 4 * 1024 * 1024,
                                       content_type="multipart/form-data; boundary=xyz")
        assert status in (400, 413) and seconds < 10  # cut at 64 KB, or refused as no form at its first bytes
        # A forged or stale cookie is no session.
        assert declared_post(url, "/staff/knowledge/upload", twenty_mb,
                             {"Cookie": "madoguchi_staff=eyJzaWQiOiAieCJ9.forged.sig"}) == 413
        # A staff session that is not an admin: the 64 KB limit, and the route's 403 for a small body.
        with httpx.Client(base_url=url, timeout=30) as clerk:
            token = csrf(clerk.get("/staff/login").text)
            assert clerk.post("/staff/login", data={"username": "clerk", "password": PASSWORD,
                                                    "csrf": token}).status_code == 303
            assert declared_post(url, "/staff/knowledge/upload", twenty_mb, _cookie(clerk)) == 413
            token = csrf(clerk.get("/staff/knowledge").text)
            assert clerk.post("/staff/knowledge/upload", data={"csrf": token},
                              files={"file": ("a.txt", "。説明".encode(), "text/plain")}).status_code == 403
        with staff_client(url) as admin:
            # The admin's declared 20 MB is admitted: the server waits for the body instead of answering.
            assert declared_post(url, "/staff/knowledge/upload", 600 * 1024, _cookie(admin), wait=2) is None
            token = csrf(admin.get("/staff/knowledge").text)
            assert admin.post("/staff/knowledge/upload", data={"csrf": token}, files={
                "file": ("big.txt", b"x" * (300 * 1024) + "\n。説明".encode(), "text/plain")}).status_code == 200
            # 600 + 300 KB spent of the 1 MB an hour: the next 200 KB is refused before its body is read.
            assert declared_post(url, "/staff/knowledge/upload", 200 * 1024, _cookie(admin)) == 429
            # The address's budget is spent too: logging out does not give the server's memory back to anyone.
            admin.cookies.clear()
            assert declared_post(url, "/staff/knowledge/upload", 200 * 1024) == 413
    services.close()


def test_the_dashboard_shows_rates_with_their_counts(site: tuple[Services, str]) -> None:
    services, url = site
    from bot.settings import SAMPLE_KB_DIR
    from knowledge.ingest import ingest_paths

    ingest_paths(services, [SAMPLE_KB_DIR])
    Engine(services).handle(InboundMessage(channel="web", external_user_id="d-1", text="専門家派遣は年に何回まで使えますか？"))
    with staff_client(url) as client:
        html = client.get("/staff/dashboard").text
    assert re.search(r"100%<span class=\"n\">（1問中1問）</span>", html), html
    assert "件数が少ないため参考値です" in html
    assert html.count('class="bar"') == 28 and "<svg" in html


def test_an_open_event_stream_does_not_hold_the_server_stop(tmp_path: Path) -> None:
    import time

    services = Services.create(make_settings(tmp_path))
    server = LiveServer(create_app(services))
    server.__enter__()
    with httpx.Client(base_url=server.url, timeout=30) as page:
        page.post("/api/chat/session")  # the visitor's session
        with page.stream("GET", "/api/chat/events") as stream:
            assert stream.status_code == 200
            started = time.monotonic()
            server.__exit__(None, None, None)
            stopped = time.monotonic() - started
    services.close()
    assert not server.thread.is_alive() and stopped < 8, stopped


def test_a_declined_question_becomes_a_candidate_that_needs_an_answer_before_publishing(
        site: tuple[Services, str]) -> None:
    from bot.storage.models import FaqCandidate

    services, url = site
    with staff_client(url) as client:
        token = csrf(client.get("/staff/knowledge").text)
        client.post("/staff/knowledge/candidate", data={"csrf": token, "question": "駐車場はありますか"})
        with services.db.session() as session:
            candidate = session.query(FaqCandidate).one()
            assert (candidate.question, candidate.answer, candidate.status) == ("駐車場はありますか", "", "pending")
        refused = client.post(f"/staff/faq/{candidate.id}/publish",
                              data={"csrf": token, "question": "駐車場はありますか", "answer": " "})
        assert "回答を入力してから公開してください" in client.get(refused.headers["location"]).text
        with services.db.session() as session:
            assert session.get(FaqCandidate, candidate.id).status == "pending"
