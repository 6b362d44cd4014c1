"""Exports (CSV, Excel, JSON), the staff API over real HTTP, and form version changes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update
from typer.testing import CliRunner

from integrations.cli_root import app as cli_app
from bot.engine import Engine
from handlers.hearing.schema import DEFINITIONS_DIR, catalog
from bot.messages import InboundMessage
from bot.services import Services
from bot.storage.models import utcnow
from handlers.hearing.models import FormResponse
from integrations.web import create_app
from tests.conftest import LiveServer, make_settings
from tests.hearing_script import EXPECTED, complete_interview

TOKEN = "staff-secret-token-0123456789"


def interview(engine: Engine, user: str, **instead: str) -> None:
    """Submit one scripted hearing sheet as `user`; `instead` maps a scripted answer to what to type instead."""

    def send_text(text: str) -> list[str]:
        text = instead.get(text, text)
        return [r.text for r in engine.handle(InboundMessage(channel="web", external_user_id=user, text=text))]

    assert "受付番号" in complete_interview(send_text)[0]


@pytest.fixture
def filled(tmp_path: Path) -> Services:
    services = Services.create(make_settings(tmp_path, staff__api_token=TOKEN))
    engine = Engine(services)
    interview(engine, "a")
    interview(engine, "b", **{"株式会社窓口製作所": "有限会社二番"})
    engine.handle(InboundMessage(channel="web", external_user_id="c", text="ヒアリング開始"))  # a draft
    yield services
    services.close()


def run_cli(*args: str) -> bytes:
    result = CliRunner().invoke(cli_app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


def test_csv_export_has_one_row_per_submitted_response_with_japanese_labels(filled: Services) -> None:
    data = run_cli("hearing", "export", "--format", "csv")
    assert data.startswith("\ufeff".encode())  # BOM for Excel
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [r["企業名"] for r in rows] == ["株式会社窓口製作所", "有限会社二番"]
    first = rows[0]
    assert first["受付番号"].startswith("H-") and first["状態"] == "送信済み"
    assert first["社員数"] == "50" and first["業種"] == "製造業"
    assert first["ITシステム導入状況"] == "会計・経理、在庫・生産管理"
    assert first["経営課題の特定"] == "はい" and first["成果公開の可否"] == "いいえ"
    assert first["法人番号"] == "" and first["業種（その他）"] == ""


def test_xlsx_export_opens_with_openpyxl_and_holds_exactly_the_stored_answers(filled: Services,
                                                                             tmp_path: Path) -> None:
    out = tmp_path / "hearing.xlsx"
    run_cli("hearing", "export", "--format", "xlsx", "--out", str(out))
    sheet = load_workbook(out).active
    header = [c.value for c in sheet[1]]
    values = [dict(zip(header, [c.value for c in row], strict=True)) for row in sheet.iter_rows(min_row=2)]
    assert len(values) == 2
    with filled.db.session() as session:
        stored = list(session.execute(select(FormResponse).where(FormResponse.status == "submitted")
                                      .order_by(FormResponse.id)).scalars())
    form = catalog(filled).latest("dx-platform")
    assert form is not None
    from handlers.hearing.answers import format_answer

    for row, response in zip(values, stored, strict=True):
        for question in form.questions:
            if question.id not in response.answers or response.answers[question.id] is None:
                assert row[question.short_label] is None
            elif question.type == "integer":
                assert row[question.short_label] == response.answers[question.id]
            else:
                assert row[question.short_label] == format_answer(question, response.answers[question.id])
    assert values[0]["社員数"] == 50 and isinstance(values[0]["社員数"], int)


def test_json_export_and_since_filter(filled: Services) -> None:
    documents = json.loads(run_cli("hearing", "export", "--format", "json"))
    assert len(documents) == 2
    answers = {a["id"]: a["value"] for a in documents[0]["answers"]}
    assert answers == {k: v for k, v in EXPECTED.items()}
    assert json.loads(run_cli("hearing", "export", "--format", "json", "--since", "2999-01-01")) == []
    with filled.db.session() as session:  # the first was submitted long ago
        first_id = min(session.execute(select(FormResponse.id)).scalars())
        session.execute(update(FormResponse).where(FormResponse.id == first_id)
                        .values(submitted_at=utcnow().replace(year=2020)))
    recent = json.loads(run_cli("hearing", "export", "--format", "json", "--since", "2021-04-01"))
    assert [d["answers"][0]["value"] for d in recent] == ["有限会社二番"]
    drafts = json.loads(run_cli("hearing", "export", "--format", "json", "--status", "in_progress"))
    assert len(drafts) == 1 and drafts[0]["status"] == "in_progress"


def test_export_rejects_bad_options_clearly(filled: Services) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["hearing", "export", "--format", "pdf"])
    assert result.exit_code == 2 and "csv / xlsx / json" in result.output
    result = runner.invoke(cli_app, ["hearing", "export", "--form", "nope"])
    assert result.exit_code == 2 and "nope" in result.output
    result = runner.invoke(cli_app, ["hearing", "export", "--since", "昨日"])
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.output


def test_staff_api_requires_the_token_and_serves_responses(filled: Services) -> None:
    with LiveServer(create_app(filled)) as server:
        url = f"{server.url}/api/hearings"
        assert httpx.get(url).status_code == 401
        wrong = httpx.get(url, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
        assert wrong.headers["www-authenticate"] == "Bearer"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        listing = httpx.get(url, headers=auth).json()
        assert listing["total"] == 2
        assert [i["company_name"] for i in listing["items"]] == ["有限会社二番", "株式会社窓口製作所"]
        everything = httpx.get(url, params={"status": "all"}, headers=auth).json()
        assert everything["total"] == 3
        detail = httpx.get(f"{url}/{listing['items'][1]['id']}", headers=auth).json()
        by_id = {a["id"]: a for a in detail["answers"]}
        assert by_id["employees"] == {"id": "employees", "label": "社員数", "value": 50, "display": 50}
        assert by_id["phase"]["display"] == "デジタル化設計・検証段階"
        missing = httpx.get(f"{url}/999999", headers=auth)
        assert missing.status_code == 404 and missing.json()["message"] == "その回答はありません。"
        assert httpx.get(url, params={"status": "bogus"}, headers=auth).status_code == 422


def test_staff_api_is_closed_when_no_token_is_configured(tmp_path: Path) -> None:
    services = Services.create(make_settings(tmp_path))
    with LiveServer(create_app(services)) as server:
        response = httpx.get(f"{server.url}/api/hearings", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    services.close()


def test_a_new_form_version_never_breaks_old_responses(tmp_path: Path) -> None:
    forms = tmp_path / "forms"
    forms.mkdir()
    v1 = (DEFINITIONS_DIR / "dx_platform_hearing.v1.yaml").read_text(encoding="utf-8")
    services = Services.create(make_settings(tmp_path, staff__api_token=TOKEN, hearing__forms_dirs=[forms]))
    engine = Engine(services)
    interview(engine, "old")
    # The secretariat ships version 2: 「社員数」 renamed, 「留意事項」 removed, a web-site question added.
    v2 = (v1.replace("version: 1", "version: 2").replace("label: 社員数", "label: 従業員数")
          .replace("      - id: notes\n        label: その他、留意すべき事項\n"
                   "        prompt: そのほか、事務局が留意すべき事項があれば教えてください。\n"
                   "        type: text\n        required: false\n        max_length: 1000\n", "")
          .replace("      - id: contact_name", "      - id: website\n        label: ウェブサイト\n"
                   "        prompt: ウェブサイトのURLがあれば教えてください。\n        type: text\n        required: false\n"
                   "      - id: contact_name"))
    assert v2.count("id: notes") == 0 and "id: website" in v2
    (forms / "dx_platform_hearing.v2.yaml").write_text(v2, encoding="utf-8")
    services.close()

    services = Services.create(make_settings(tmp_path, staff__api_token=TOKEN, hearing__forms_dirs=[forms]))
    engine = Engine(services)
    interview(engine, "new")
    with services.db.session() as session:
        versions = [r.form_version for r in session.execute(select(FormResponse).order_by(FormResponse.id)).scalars()]
    assert versions == [1, 2]
    from handlers.hearing.export import export, select_responses

    with services.db.session() as session:
        responses = select_responses(session, "dx-platform")
        header, *_ = export(catalog(services), "dx-platform", responses, "csv").decode("utf-8-sig").splitlines()
        rows = list(csv.DictReader(io.StringIO(export(catalog(services), "dx-platform", responses,
                                                      "csv").decode("utf-8-sig"))))
    assert "従業員数" in header and "その他、留意すべき事項" in header and "ウェブサイト" in header
    assert rows[0]["従業員数"] == "50" and rows[0]["その他、留意すべき事項"] == "特になし"
    assert rows[1]["その他、留意すべき事項"] == "" and rows[1]["ウェブサイト"] == ""
    with LiveServer(create_app(services)) as server:
        old = httpx.get(f"{server.url}/api/hearings/{responses[0].id}",
                        headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert {a["id"]: a["label"] for a in old["answers"]}["notes"] == "その他、留意すべき事項"
    services.close()


def test_hearing_check_command_names_the_broken_field(tmp_path: Path) -> None:
    good = DEFINITIONS_DIR / "dx_platform_hearing.v1.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text(encoding="utf-8").replace("type: postal_code", "type: zip"), encoding="utf-8")
    result = CliRunner().invoke(cli_app, ["hearing", "check", str(good), str(bad)])
    assert result.exit_code == 1
    assert "OK" in result.output and "id=postal_code" in result.output and "type" in result.output
