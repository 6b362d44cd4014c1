"""Edition metadata beside the documents (knowledge/edition.py, docs/EDITIONS.md): each source's program, fiscal
year and application window from `editions.meta.yaml` in its folder or `<document>.meta.yaml` beside it, which
win over the cover; never ingested as a document; shown by `knowledge ingest`; checked, with a polite message
for a bad file. Through the real chat path: the shipped sample's edition named when another fiscal year is
asked, and a passed deadline noted against an injected today."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from typer.testing import CliRunner

import knowledge.learned as learned
from bot.services import Services
from bot.settings import Settings
from bot.storage.models import KnowledgeSource
from integrations.cli_root import app
from integrations.web import create_app
from knowledge.edition import FOLDER_META, MetadataError, check_metadata, metadata_for, read_edition
from knowledge.ingest import discover, ingest_paths
from knowledge.model import load_model
from tests.conftest import CHAT_HEADERS, CHAT_TOKEN, SAMPLE_KB_DIR, LiveServer

#: A call whose cover names no fiscal year, and whose deadline is a month and a day without a year: which
#: year it is in only the metadata can say.
CALL = """# さくら町商店街にぎわい創出事業 募集のご案内

## 1. 募集の概要

商店街の空き店舗を使ったにぎわいづくりの取り組みを募集します。

## 2. 提出期限

提案書の提出期限は、7月31日（金）17時必着です。

## 3. 補助の内容

補助金の上限額は50万円です。
"""
FAQ = """title: さくら町商店街にぎわい創出事業 よくある質問
faq:
  - question: 個人でも応募できますか？
    answer: 商店街振興組合または商店会の推薦を受けた個人事業主も応募できます。
"""
FOLDER = """editions:
  - program: さくら町商店街にぎわい創出事業
    fiscal_year: 令和8年度
    window_start: 2026-06-01
    documents: [sakura-call.md, sakura-faq.yaml]
"""


def _folder(tmp_path: Path, metadata: str | None = FOLDER) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "sakura-call.md").write_text(CALL, encoding="utf-8")
    (docs / "sakura-faq.yaml").write_text(FAQ, encoding="utf-8")
    if metadata is not None:
        (docs / FOLDER_META).write_text(metadata, encoding="utf-8")
    return docs


def _ingest(docs: Path, data: Path) -> str:
    result = CliRunner().invoke(app, ["knowledge", "ingest", str(docs)],
                                env={"MADOGUCHI_DATA_DIR": str(data), "COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    return result.output


def test_ingest_reads_each_documents_edition_from_the_folders_metadata_and_never_ingests_the_file(
        tmp_path: Path) -> None:
    docs = _folder(tmp_path)
    output = _ingest(docs, tmp_path / "data")
    assert "files: 2" in output and "errors: 0" in output, output
    assert output.count(FOLDER_META) == 2 and "edition" in output, "ingest shows where the edition was read from"
    services = Services.create(Settings(data_dir=tmp_path / "data"))
    # what the table shows (read back unchanged: the terminal's width may cut the table's cells)
    shown = {Path(r.path).name: r.edition for r in ingest_paths(services, [docs]).results}
    # the call states its deadline; the FAQ, of the same edition, has the window's start from the metadata only
    program = "さくら町商店街にぎわい創出事業"
    assert shown == {"sakura-call.md": f"{program}（令和8年度版、募集期間 2026-06-01〜2026-07-31） ← editions.meta.yaml",
                     "sakura-faq.yaml": f"{program}（令和8年度版、募集開始 2026-06-01） ← editions.meta.yaml"}
    with services.db.session() as session:
        paths = sorted(Path(p).name for p in session.execute(select(KnowledgeSource.path)).scalars())
    assert paths == ["sakura-call.md", "sakura-faq.yaml"], "the metadata file is no document"
    # the window's end from the cover (提出期限), the rest from the metadata, which wins field by field
    index = services.knowledge.refresh()
    (edition,) = [e for sid, e in index.editions.items() if index.sources[sid].path.endswith("sakura-call.md")]
    assert (edition.program, edition.fiscal_year, edition.window_start, edition.window_end) == \
        ("さくら町商店街にぎわい創出事業", 2026, date(2026, 6, 1), date(2026, 7, 31))
    services.close()
    # given by name, a metadata file is not ingested either
    assert discover([docs / FOLDER_META, docs / "sakura-call.md"])[0] == [(docs / "sakura-call.md").resolve()]


def test_the_metadata_wins_over_the_cover_and_a_documents_own_file_over_its_folders(tmp_path: Path) -> None:
    docs = _folder(tmp_path)
    lines = ["# 令和7年度 さくら町商店街にぎわい創出事業 募集のご案内", "募集期間：令和7年5月1日～令和7年5月30日"]
    cover = read_edition(lines[0].lstrip("# "), "さくら町", lines)
    assert (cover.fiscal_year, cover.window_end, cover.origin) == (2025, date(2025, 5, 30), "cover")
    with_folder = read_edition(lines[0].lstrip("# "), "さくら町", lines, str(docs / "sakura-call.md"))
    assert (with_folder.fiscal_year, with_folder.window_start, with_folder.origin) == \
        (2026, date(2026, 6, 1), FOLDER_META)
    (docs / "sakura-call.md.meta.yaml").write_text("fiscal_year: 2027\nwindow_end: 2027-07-30\n", encoding="utf-8")
    own = read_edition(lines[0].lstrip("# "), "さくら町", lines, str(docs / "sakura-call.md"))
    assert (own.fiscal_year, own.window_end, own.origin) == (2027, date(2027, 7, 30), "sakura-call.md.meta.yaml")
    assert metadata_for(docs / "sakura-faq.yaml")[1] == FOLDER_META  # type: ignore[index]
    assert metadata_for(tmp_path / "elsewhere.md") is None


@pytest.mark.parametrize(("text", "said"), [
    ("fiscal_year: 来年\n", "「来年」は年度として読めません。令和8年度、2026年度、2026 のように書いてください"),
    ("year: 2026\n", "year: この項目は使えません"),
    ("window_end: 6月19日\n", "「6月19日」は日付として読めません。2026-06-19 のように書いてください"),
    ("window_start: 2026-07-01\nwindow_end: 2026-06-19\n", "window_end（2026-06-19）が window_start（2026-07-01）より前です"),
    ("- 令和8年度\n", "key: value の形で書いてください"),
    ("fiscal_year: [令和8年度\n", "YAML として読めませんでした"),
])
def test_a_bad_metadata_file_is_named_with_what_to_write(tmp_path: Path, text: str, said: str) -> None:
    docs = _folder(tmp_path, metadata=None)
    meta = docs / "sakura-call.md.meta.yaml"
    meta.write_text(text, encoding="utf-8")
    with pytest.raises(MetadataError) as raised:
        metadata_for(docs / "sakura-call.md")
    assert raised.value.path == meta and str(raised.value).startswith(str(meta)) and said in str(raised.value)
    assert check_metadata(docs) == [(meta, str(raised.value))]
    # the bot keeps its edition from the cover meanwhile
    assert read_edition("公募のご案内", "さくら町", [], str(docs / "sakura-call.md")).origin == "cover"


def test_ingest_reports_a_bad_metadata_file_and_still_ingests_its_documents(tmp_path: Path) -> None:
    docs = _folder(tmp_path, metadata=FOLDER.replace("sakura-faq.yaml", "sakura-faq.yml").replace(
        "window_start: 2026-06-01", "window_start: 2026-06-01\n    round: 2"))
    output = _ingest(docs, tmp_path / "data")
    assert "files: 3" in output and "errors: 1" in output, output
    assert FOLDER_META in output, output
    services = Services.create(Settings(data_dir=tmp_path / "data"))
    rows = ingest_paths(services, [docs]).results
    services.close()
    (error,) = [r for r in rows if r.status == "error"]
    assert Path(error.path).name == FOLDER_META and "editions.0.round: この項目は使えません" in error.message
    assert all("←" not in r.edition for r in rows), "the bad file is left out: the editions are the covers'"
    # mended, but naming a document that is not there
    (docs / FOLDER_META).write_text(FOLDER.replace("sakura-faq.yaml", "sakura-faq.yml"), encoding="utf-8")
    assert [message for _, message in check_metadata(docs)] == \
        [f"{docs / FOLDER_META}: documents に書かれた sakura-faq.yml がこのフォルダにありません"]
    (docs / "other.md.meta.yaml").write_text("fiscal_year: 2026\n", encoding="utf-8")
    assert "対応する資料 other.md がありません" in check_metadata(docs)[1][1]


def test_a_deadline_the_metadatas_fiscal_year_places_is_noted_as_passed_against_an_injected_today(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """「7月31日」 with no year is in the edition's fiscal year: without the metadata it is no date the bot can
    compare with today, with it the answer says the deadline has passed (and not the day before)."""
    model = load_model()
    monkeypatch.setattr(learned, "load_model", lambda: replace(model, gate=replace(model.gate, threshold=-1.0,
                                                                                         general_threshold=None)))
    notes = {}
    for metadata in (None, FOLDER):
        root = tmp_path / ("with" if metadata else "without")
        root.mkdir()
        services = Services.create(Settings(data_dir=root / "data", knowledge={"pipeline": "learned"}))
        ingest_paths(services, [_folder(root, metadata)])
        for today in (date(2026, 7, 31), date(2026, 8, 3)):
            services.knowledge.today = lambda today=today: today
            answer = services.knowledge.ask("さくら町の提案書の提出期限はいつですか")
            assert answer.confident and "7月31日" in answer.body, answer.text
            notes[metadata is not None, today] = answer.note
        services.close()
    assert notes[True, date(2026, 8, 3)].startswith("※この期日（令和8年7月31日）はすでに過ぎています（本日 令和8年8月3日）")
    assert notes[True, date(2026, 7, 31)] == "" and notes[False, date(2026, 8, 3)] == ""


@pytest.fixture
def web(sample_kb_services: Services) -> httpx.Client:  # type: ignore[misc]
    sample_kb_services.settings.staff.api_token = SecretStr(CHAT_TOKEN)
    with LiveServer(create_app(sample_kb_services)) as server, httpx.Client(base_url=server.url, timeout=60,
                                                                            headers=CHAT_HEADERS) as client:
        yield client


def test_the_sample_declines_another_fiscal_year_naming_the_edition_it_holds(web: httpx.Client) -> None:
    """`make chat` with 専門家派遣事業 chosen: 「令和9年度の公募はありますか」 got the outside reply while the sample
    stated no fiscal year; sample_kb/editions.meta.yaml gives it one."""
    assert check_metadata(SAMPLE_KB_DIR) == []
    for n, (program, held) in enumerate((
            ("expert-dispatch", "専門家派遣事業（令和8年度版、募集期間 令和8年4月1日〜令和9年3月31日）"),
            ("regional-dx", "地域DX伴走支援事業（令和8年度版、募集期間 令和8年4月7日〜令和8年4月28日）"))):
        reply = web.post("/api/chat", json={"user_id": f"edition-{n}", "text": "令和9年度の公募はありますか",
                                            "program": program})
        assert reply.status_code == 200, reply.text
        first = reply.json()["replies"][0]
        assert first["outcome"] == "other_edition", first
        assert "この窓口が持っている資料は" in first["text"] and held in first["text"], first["text"]
    same = web.post("/api/chat", json={"user_id": "edition-own", "text": "令和8年度の謝金は1時間いくらですか",
                                       "program": "expert-dispatch"}).json()["replies"][0]
    assert same["outcome"] != "other_edition", same
