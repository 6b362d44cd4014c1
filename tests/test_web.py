"""`/api/chat` and the web app over real HTTP (uvicorn on loopback, httpx client)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.services import Services
from bot.storage.models import Message
from integrations.web import create_app
from tests.conftest import CHAT_HEADERS, CHAT_TOKEN, LiveServer


@pytest.fixture
def live(services: Services) -> Iterator[tuple[httpx.Client, Services]]:
    services.settings.staff.api_token = SecretStr(CHAT_TOKEN)
    with LiveServer(create_app(services)) as server, httpx.Client(base_url=server.url, timeout=30,
                                                                  headers=CHAT_HEADERS) as client:
        yield client, services


def _stored(services: Services) -> int:
    with services.db.session() as session:
        return session.execute(select(func.count()).select_from(Message)).scalar_one()


def test_chat_round_trip_and_conversation_continues(live) -> None:  # type: ignore[no-untyped-def]
    client, services = live
    first = client.post("/api/chat", json={"user_id": "web-1", "text": "メニュー"})
    assert first.status_code == 200
    body = first.json()
    assert body["replies"][0]["text"].startswith("こんにちは")
    assert set(body["replies"][0]) >= {"text", "options"}
    second = client.post("/api/chat", json={"user_id": "web-1", "text": "ヘルプ"})
    assert second.status_code == 200
    assert _stored(services) == 4


def test_choice_and_location_are_accepted(live) -> None:  # type: ignore[no-untyped-def]
    client, _ = live
    response = client.post("/api/chat", json={"user_id": "web-2", "choice": "menu:open"})
    assert response.status_code == 200
    response = client.post("/api/chat", json={"user_id": "web-2", "location": {"lat": 35.68, "lon": 139.76}})
    assert response.status_code == 200 and response.json()["replies"]


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        ({"user_id": "web-3", "text": ""}, 422, "empty_message"),
        ({"user_id": "web-3", "text": "   "}, 422, "empty_message"),
        ({"user_id": "web-3"}, 422, "empty_message"),
        ({"user_id": "web-3", "text": "あ" * 4001}, 422, "too_long"),
        ({"user_id": "web-3", "text": "x" * 100_000}, 413, "too_large"),
        ({"user_id": "web-3", "text": "hi", "admin": True}, 422, "unknown_field"),
        ({"user_id": "", "text": "hi"}, 422, "invalid_request"),
        ({"user_id": "web-3", "location": {"lat": 123, "lon": 0}}, 422, "invalid_request"),
        ([1, 2, 3], 422, "invalid_request"),
    ],
)
def test_bad_requests_get_4xx_with_a_clear_message_and_lose_nothing(live, payload, status, code) -> None:  # type: ignore[no-untyped-def]
    client, services = live
    client.post("/api/chat", json={"user_id": "web-3", "text": "メニュー"})
    before = _stored(services)
    if isinstance(payload, bytes):
        response = client.post("/api/chat", content=payload, headers={"content-type": "application/json"})
    else:
        response = client.post("/api/chat", json=payload)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert body["message"] and body["message_en"]
    assert _stored(services) == before
    again = client.post("/api/chat", json={"user_id": "web-3", "text": "ヘルプ"})
    assert again.status_code == 200


def test_health_ready_page_and_openapi(live) -> None:  # type: ignore[no-untyped-def]
    client, _ = live
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": True, "index": True}
    page = client.get("/")
    assert page.status_code == 200 and "窓口チャット" in page.text and "/api/chat" in page.text
    schema = client.get("/openapi.json").json()
    chat = schema["paths"]["/api/chat"]["post"]
    assert "ChatRequest" in str(chat["requestBody"]) and "ChatResponse" in str(chat["responses"]["200"])
    assert "x-request-id" in client.get("/healthz").headers


def test_readyz_reports_database_down(sqlite_services: Services) -> None:
    with LiveServer(create_app(sqlite_services)) as server:
        sqlite_services.db.ping = lambda: False  # type: ignore[method-assign]
        response = httpx.get(f"{server.url}/readyz", timeout=30)
    assert response.status_code == 503
    assert response.json()["checks"]["database"] is False


def test_the_api_and_the_engine_share_one_length_rule(services: Services) -> None:
    """Issue 19: web.py had its own 4000-character constant beside the engine's `max_message_chars`."""
    services.settings.staff.api_token = SecretStr(CHAT_TOKEN)
    services.settings.chat.max_message_chars = 20
    with LiveServer(create_app(services)) as server, httpx.Client(base_url=server.url, timeout=30,
                                                                  headers=CHAT_HEADERS) as client:
        refused = client.post("/api/chat", json={"user_id": "web-len", "text": "あ" * 21})
        assert refused.status_code == 422 and refused.json()["error"] == "too_long"
        assert "20文字まで" in refused.json()["message"]
        assert client.post("/api/chat", json={"user_id": "web-len", "text": "あ" * 20}).status_code == 200
