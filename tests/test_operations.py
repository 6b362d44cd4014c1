"""Operations: API tokens, audit search, masked and rotated logs, data requests, backups and restore."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.security import api_tokens
from bot.backup import create as create_backup
from bot.backup import list_backups, restore
from integrations.cli_root import app as cli_app
from bot.engine import Engine
from bot.logging_setup import LOG_FILE, configure_logging, purge_logs
from handlers.accounts.data_requests import ERASED, export, forget
from bot.services import Services
from bot.storage.audit import verify_chain
from bot.storage.models import AuditEvent, ChannelIdentity, Message, Person
from bot.security.models import ApiToken
from handlers.hearing.models import FormResponse
from integrations.web import create_app
from tests.conftest import LiveServer, make_settings
from tests.conftest import send


def test_api_tokens_are_hashed_scoped_and_revocable(services: Services) -> None:
    with services.db.session() as session:
        reader, hearing_token = api_tokens.create(session, "事務局スプレッドシート", ["hearings:read"])
        _, visits_token = api_tokens.create(session, "報告集計", ["visits:read"])
        with pytest.raises(api_tokens.TokenError):
            api_tokens.create(session, "bad", ["admin:everything"])
        stored = session.execute(select(ApiToken.token_hash)).scalars().all()
    assert hearing_token not in stored and all(len(h) == 64 for h in stored)
    with LiveServer(create_app(services)) as server:
        def get(path: str, token: str) -> httpx.Response:
            return httpx.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"})

        assert get("/api/hearings", hearing_token).status_code == 200
        denied = get("/api/visits", hearing_token)
        assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
        assert get("/api/visits", visits_token).status_code == 200
        with services.db.session() as session:
            api_tokens.revoke(session, reader.id)
        assert get("/api/hearings", hearing_token).status_code == 401
    with services.db.session() as session:
        actions = session.execute(select(AuditEvent.action)).scalars().all()
    assert {"api_token.created", "api_token.revoked", "hearing.listed", "visits.listed"} <= set(actions)


def test_audit_search_lists_who_did_what(sqlite_services: Services) -> None:
    engine = Engine(sqlite_services)
    send(engine, "ヒアリング開始", user="auditee")
    with sqlite_services.db.session() as session:
        person_id = session.execute(select(ChannelIdentity.person_id).where(
            ChannelIdentity.external_user_id == "auditee")).scalar_one()
    result = CliRunner().invoke(cli_app, ["audit", "search", "--person", str(person_id), "--action", "hearing.",
                                          "--since", "2000-01-01", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["action"] for r in rows] == ["hearing.started"] and rows[0]["actor_person_id"] == person_id


def test_logs_are_json_masked_and_purged_without_touching_records(sqlite_services: Services, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    configure_logging("INFO", log_dir, force=True)
    try:
        logging.getLogger("madoguchi.test").warning(
            "相談者 山田太郎様 090-1234-5678 tanto@example.co.jp 〒100-0001 東京都千代田区千代田1-1 から問い合わせ")
        for handler in logging.getLogger().handlers:
            handler.flush()
        line = (log_dir / LOG_FILE).read_text(encoding="utf-8").strip().splitlines()[-1]
        event = json.loads(line)
        assert event["level"] == "warning" and "timestamp" in event
        for secret in ("山田太郎", "090-1234-5678", "tanto@example.co.jp", "100-0001", "千代田1-1"):
            assert secret not in line
        assert "[電話番号]" in event["event"] and "[メール]" in event["event"]
    finally:
        configure_logging("INFO", None, force=True)
    engine = Engine(sqlite_services)
    send(engine, "メニュー", user="log-user")
    old_day = (datetime.now(UTC) - timedelta(days=120)).strftime("%Y-%m-%d")
    recent_day = (datetime.now(UTC) - timedelta(days=10)).strftime("%Y-%m-%d")
    (log_dir / f"{LOG_FILE}.{old_day}").write_text("{}\n")
    (log_dir / f"{LOG_FILE}.{recent_day}").write_text("{}\n")
    with sqlite_services.db.session() as session:
        before = session.execute(select(func.count()).select_from(Message)).scalar_one()
    removed = purge_logs(log_dir, 90)
    assert [p.name for p in removed] == [f"{LOG_FILE}.{old_day}"]
    assert (log_dir / f"{LOG_FILE}.{recent_day}").exists() and (log_dir / LOG_FILE).exists()
    with sqlite_services.db.session() as session:
        assert session.execute(select(func.count()).select_from(Message)).scalar_one() == before
        assert verify_chain(session).ok


def test_people_export_and_forget_keep_the_audit_chain_valid(services: Services) -> None:
    engine = Engine(services)
    send(engine, "ヒアリング開始", user="subject")
    send(engine, "株式会社個人情報", user="subject")
    send(engine, "担当者と話したい", user="subject")
    send(engine, "電話番号は090-1111-2222です", user="subject")
    with services.db.session() as session:
        person_id = session.execute(select(ChannelIdentity.person_id).where(
            ChannelIdentity.external_user_id == "subject")).scalar_one()
        document = export(session, person_id)
    assert document["accounts"][0]["external_user_id"] == "subject"
    assert document["hearing_responses"][0]["answers"] == {"company_name": "株式会社個人情報"}
    assert any("090-1111-2222" in (m["text"] or "") for m in document["messages"])
    assert document["tickets"][0]["question"] == "電話番号は090-1111-2222です"
    json.dumps(document, default=str)

    with services.db.session() as session:
        counts = forget(session, person_id, actor="test")
    assert counts["accounts"] == 1 and counts["hearing_responses"] == 1 and counts["tickets"] == 1
    with services.db.session() as session:
        assert verify_chain(session).ok
        again = export(session, person_id)
        person = session.get(Person, person_id)
        assert person.display_name == ERASED
        response = session.execute(select(FormResponse)).scalar_one()
        assert response.answers == {} and response.status == "erased"
    text = json.dumps(again, ensure_ascii=False, default=str)
    assert "090-1111-2222" not in text and "株式会社個人情報" not in text and "subject" not in text
    # The same chat account writing again is a new, anonymous person.
    send(engine, "メニュー", user="subject")
    with services.db.session() as session:
        assert session.execute(select(ChannelIdentity.person_id).where(
            ChannelIdentity.external_user_id == "subject")).scalar_one() != person_id


def test_sqlite_backup_while_writing_and_restore_end_to_end(tmp_path: Path) -> None:
    services = Services.create(make_settings(tmp_path, backup__generations=3))
    engine = Engine(services)
    send(engine, "ヒアリング開始", user="keep-me")
    send(engine, "株式会社バックアップ", user="keep-me")
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:  # the service keeps taking messages during the backup
        n = 0
        while not stop.is_set():
            send(engine, "メニュー", user=f"busy-{n}")
            written.append(n)
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.3)
    info = create_backup(services)
    time.sleep(0.3)
    stop.set()
    thread.join()
    assert len(written) > 2 and info.manifest["database"] == "sqlite"

    with services.db.session() as session:  # disaster: the hearing answers are lost
        session.query(FormResponse).delete()
    result = restore(services, info.path)
    assert result["database"] == "sqlite"
    with services.db.session() as session:
        response = session.execute(select(FormResponse)).scalar_one()
        assert response.answers == {"company_name": "株式会社バックアップ"}
        assert verify_chain(session).ok
    send(engine, "ヒアリング開始", user="keep-me")  # the service works on the restored data
    for _ in range(3):
        create_backup(services)
    assert len(list_backups(services)) == 3  # generations
    services.close()


def test_backup_and_restore_through_the_cli_with_index_rebuild(tmp_path: Path) -> None:
    from bot.settings import SAMPLE_KB_DIR

    services = Services.create(make_settings(tmp_path, knowledge__paths=[SAMPLE_KB_DIR]))
    from knowledge.ingest import ingest_paths

    ingest_paths(services, [SAMPLE_KB_DIR])
    services.close()
    runner = CliRunner()
    created = runner.invoke(cli_app, ["backup", "create"])
    assert created.exit_code == 0, created.output
    name = runner.invoke(cli_app, ["backup", "list"]).output.split()[0]
    restored = runner.invoke(cli_app, ["backup", "restore", name, "--rebuild-index", "--yes"])
    assert restored.exit_code == 0, restored.output
    assert "rebuilt" in restored.output
    services = Services.create(make_settings(tmp_path, knowledge__paths=[SAMPLE_KB_DIR]))
    answer = services.knowledge.ask("専門家派遣は年に何回まで使えますか？")
    assert answer.confident and "3回" in answer.text
    services.close()


def test_postgresql_backup_and_restore(pg_database: str, tmp_path: Path) -> None:
    import shutil

    if not shutil.which("pg_dump") and not list(Path("/usr/lib/postgresql").glob("*/bin/pg_dump")):
        if os.environ.get("MADOGUCHI_REQUIRE_PG"):
            pytest.fail("pg_dump missing")
        pytest.skip("pg_dump not installed")
    services = Services.create(make_settings(tmp_path, pg_database))
    engine = Engine(services)
    send(engine, "ヒアリング開始", user="pg-keep")
    send(engine, "株式会社ピージー", user="pg-keep")
    info = create_backup(services)
    assert info.manifest["database"] == "postgresql" and (info.path / "db.dump").exists()
    send(engine, "スキップ", user="pg-keep")
    with services.db.session() as session:
        session.query(FormResponse).delete()
    restore(services, info.path)
    with services.db.session() as session:
        response = session.execute(select(FormResponse)).scalar_one()
        assert response.answers == {"company_name": "株式会社ピージー"}
        assert verify_chain(session).ok
    services.close()
