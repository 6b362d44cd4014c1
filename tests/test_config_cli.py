"""`madoguchi config show` masks secrets; `db upgrade` runs the migrations."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from integrations.cli_root import app
from bot.settings import get_settings
from bot.storage.db import Database


def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MADOGUCHI_SLACK__BOT_TOKEN", "xoxb-very-secret")
    monkeypatch.setenv("MADOGUCHI_DATABASE__URL", "postgresql+psycopg://bot:hunter2@db.example/madoguchi")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    values = json.loads(result.output)
    assert values["slack"]["bot_token"] == "********"
    assert "hunter2" not in result.output and "xoxb-very-secret" not in result.output
    assert values["database"]["url"].startswith("postgresql+psycopg://bot:***@")


def test_dotenv_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / ".env").write_text("MADOGUCHI_LOCALE=en\nMADOGUCHI_KNOWLEDGE__ANSWER_THRESHOLD=0.7\n", encoding="utf-8")
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.locale == "en" and settings.knowledge.answer_threshold == 0.7


def test_schema_comes_from_migrations(database_url: str | None, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = database_url or f"sqlite:///{tmp_path / 'm.sqlite3'}"
    db = Database(url)
    assert not db.is_current()
    db.migrate()
    assert db.is_current()
    tables = set(inspect(db.engine).get_table_names())
    assert {"people", "channel_identities", "conversations", "messages", "audit_events",
            "knowledge_sources", "knowledge_chunks", "saved_replies", "alembic_version"} <= tables
    db.migrate()  # idempotent
    db.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    db.dispose()


@pytest.mark.parametrize("word", ["/quit", "/exit", "quit"])
def test_terminal_chat_ends_on_the_usual_quit_words(word: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A terminal user types /quit as in other chat tools; it ends the chat instead of being an unknown command."""
    monkeypatch.setenv("MADOGUCHI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MADOGUCHI_DATABASE__URL", raising=False)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["chat"], input=f"{word}\n")
    assert result.exit_code == 0, result.output
    assert "またのご利用をお待ちしています" in result.output
    assert "コマンドはありません" not in result.output
