"""The audit chain detects a row edited, deleted or inserted directly in the database."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from integrations.cli_root import app
from bot.services import Services
from bot.storage import audit
from bot.storage.models import AuditEvent


def _three_events(services: Services) -> list[int]:
    with services.db.session() as session:
        ids = [audit.record(session, f"test.{n}", subject_type="thing", subject_id=n, data={"n": n}).id
               for n in range(3)]
    return ids


def test_intact_chain_verifies(services: Services) -> None:
    _three_events(services)
    with services.db.session() as session:
        report = audit.verify_chain(session)
    assert report.ok and report.checked == 3


def test_edited_row_is_reported(services: Services) -> None:
    ids = _three_events(services)
    with services.db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET action = 'test.forged' WHERE id = :id"), {"id": ids[1]})
    with services.db.session() as session:
        report = audit.verify_chain(session)
    assert report.first_broken_id == ids[1]
    assert "edited" in (report.reason or "")


def test_deleted_row_is_reported(services: Services) -> None:
    ids = _three_events(services)
    with services.db.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[1]})
    with services.db.session() as session:
        assert audit.verify_chain(session).first_broken_id == ids[2]


def test_cli_audit_verify_exits_1_on_tampering(sqlite_services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = _three_events(sqlite_services)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "chain intact" in ok.output
    with sqlite_services.db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET data = '{\"n\": 99}' WHERE id = :id"), {"id": ids[0]})
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert f"event id {ids[0]}" in broken.output


def test_events_written_by_engine_are_chained(sqlite_services: Services) -> None:
    from bot.engine import Engine
    from bot.messages import InboundMessage

    Engine(sqlite_services).handle(InboundMessage(channel="cli", external_user_id="me", text="メニュー"))
    with sqlite_services.db.session() as session:
        actions = list(session.execute(select(AuditEvent.action)).scalars())
        assert "person.created" in actions
        assert audit.verify_chain(session).ok
