"""The audit chain under ordinary concurrency (issue 20, finding 2): parallel failed logins and chat
traffic over real HTTP never fork the chain, on SQLite and PostgreSQL; `audit verify` names every broken
link, not only the first."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from integrations.cli_root import app as cli
from bot.services import Services
from handlers.escalation.staff import create as create_staff
from bot.storage import audit
from bot.storage.models import AuditEvent
from integrations.web import create_app
from tests.conftest import LiveServer, make_settings
from tests.test_staff_console import after_login, csrf_of

CHAT_TOKEN = "chat-token-for-audit-tests"


def test_parallel_logins_and_chats_never_fork_the_chain(tmp_path: Path, database_url: str | None) -> None:
    services = Services.create(make_settings(tmp_path, database_url, staff__cookie_secure=False,
                                             staff__api_token=CHAT_TOKEN, limits__login_failures_per_ip=1000))
    with services.db.session() as session:
        create_staff(session, "yamada", "山田", "correct horse battery staple")
    with LiveServer(create_app(services)) as server:
        barrier = threading.Barrier(24)

        def failed_login(n: int) -> int:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                token = csrf_of(client.get("/staff/login").text)
                barrier.wait()
                return after_login(client, client.post("/staff/login", data={
                    "username": f"nobody{n}", "password": "wrong password!", "csrf": token})).status_code

        def chats(n: int) -> list[int]:
            codes = []
            with httpx.Client(base_url=server.url, timeout=60,
                              headers={"Authorization": f"Bearer {CHAT_TOKEN}"}) as client:
                barrier.wait()
                for i in range(8):
                    user = f"audit-{n}-{i}"
                    for text_ in ("ヒアリング開始", "ABCD-2345", "やめる"):
                        codes.append(client.post("/api/chat", json={"user_id": user, "text": text_}).status_code)
            return codes

        with ThreadPoolExecutor(24) as pool:
            logins = [pool.submit(failed_login, n) for n in range(20)]
            chatting = [pool.submit(chats, n) for n in range(4)]
            assert all(f.result() == 401 for f in logins)
            assert all(code == 200 for f in chatting for code in f.result())
    with services.db.session() as session:
        report = audit.verify_chain(session)
        heads = session.execute(select(AuditEvent.prev_hash, func.count()).group_by(AuditEvent.prev_hash)
                                .having(func.count() > 1)).all()
        events = session.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
    assert heads == [], heads  # no two events on one head
    assert report.ok, report.broken
    assert events >= 20 + 4 * 8 * 2
    services.close()


def test_audit_verify_reports_every_broken_link(sqlite_services: Services) -> None:
    with sqlite_services.db.session() as session:
        ids = [audit.record(session, f"test.{n}", subject_id=n, data={"n": n}).id for n in range(6)]
    with sqlite_services.db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET action = 'test.forged' WHERE id = :id"), {"id": ids[1]})
        connection.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[3]})
        connection.execute(text("UPDATE audit_events SET data = '{\"n\": 99}' WHERE id = :id"), {"id": ids[5]})
    with sqlite_services.db.session() as session:
        report = audit.verify_chain(session)
    assert [event_id for event_id, _ in report.broken] == [ids[1], ids[4], ids[5]]
    assert "edited" in report.broken[0][1] and "link" in report.broken[1][1]
    result = CliRunner().invoke(cli, ["audit", "verify"])
    assert result.exit_code == 1
    for event_id in (ids[1], ids[4], ids[5]):
        assert f"event id {event_id}" in result.output
