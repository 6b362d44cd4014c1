"""Candidate recall: the passage or unit holding the answer reaches the ranker (benchmarks/recall_eval.py
measures each of these on the bank).

- a question steered by its words alone (not by a phrase of a title) keeps the best passages of the whole
  corpus among its candidates;
- a table whose rows are tab-separated cells keeps one row per line (no 。 ends a row, yet rows are not
  joined into one run-on line);
- an HTML list written on one line is read as one item per line;
- an over-long run-on unit (a table flattened into one "sentence") is also read in overlapping parts, so a
  fact past the unit's cut is still read whole.
"""

from __future__ import annotations

from bot.services import Services
from bot.text import compact
from knowledge.chunking import logical_lines
from knowledge.features import candidates
from knowledge.retrieval import RetrievalOptions
from knowledge.units import MAX_UNIT_CHARS, units_of


def test_a_question_steered_by_its_words_keeps_the_corpus_best_passages(learned_calls: Services) -> None:
    """「みどり市」「公募」 are words of みどり市's title, but the 宿泊費 the question asks about is in the other
    call: steering by the title's words puts みどり市's passages first and the learned pipeline's pool keeps
    only them, unless the best passages by fused score alone stay candidates too. A question quoting a phrase
    of a title is steered as before (the strongest sign there is)."""
    index = learned_calls.knowledge.refresh(force=True)
    question = "みどり市の公募で講師の宿泊費はいくらまで？"
    assert index.named_in_text(question) is None
    try:
        index.options = RetrievalOptions(unsteered=0)
        steered = index.search(question)
        assert steered.steered_source is not None
        assert index.sources[steered.steered_source].name == "midori-dx-call.md"
        assert not any("9,800円" in c.unit.text for c in candidates(steered))
        index.options = RetrievalOptions()
        kept = index.search(question)
        assert kept.unsteered and all(h.chunk.kind != "faq" for h in kept.unsteered)
        assert any("9,800円" in c.unit.text for c in candidates(kept))
        assert not index.search("地域デジタル推進事業の研修講師の宿泊費の上限は？").unsteered
    finally:
        index.options = RetrievalOptions()


def test_rows_of_tab_separated_cells_are_not_joined_into_one_line() -> None:
    raw = ["4. スケジュール", "令和5年4月～\t契約締結、事業の方向性等調整", "5, 6月\t地域ハブ団体への全体説明会",
           "11月～\t(2) オンライン研修プログラム(企業と人材のマッチング)実施", "令和6年3月\t事業報告書提出",
           "本事業の実施期間は上記のとおりとするが、状況に応じて変更する場合は", "事前に協議すること。"]
    texts = [line.text for line in logical_lines([raw])]
    assert "11月~ (2) オンライン研修プログラム(企業と人材のマッチング)実施" in texts
    assert "令和6年3月 事業報告書提出" in texts
    # a prose line wrapped by the PDF is still joined
    assert "本事業の実施期間は上記のとおりとするが、状況に応じて変更する場合は事前に協議すること。" in texts


def test_an_html_list_on_one_line_is_read_one_item_per_line() -> None:
    raw = ['<ul><li>● 企業概要<ul><li>・ 企業名</li><li>・ 業種</li></ul></li><li>● 各種の許諾'
           '<ul><li>・ 成果公開の可否、データの教育用途での利用許諾</li></ul></li></ul>']
    texts = [line.text for line in logical_lines([raw])]
    assert len(texts) == 5
    assert any(t.endswith("成果公開の可否、データの教育用途での利用許諾") for t in texts)


def test_inline_html_left_by_a_converter_is_read_as_text() -> None:
    """Footnote marks and entities that a PDF-to-Markdown converter leaves would otherwise be shown to users
    (「低いものとします<sup>1</sup>」, 「&lt;事業開発・企画&gt;」) and matched as words."""
    raw = ["一般管理費率は10%とします<sup>1</sup>。",
           "<p>&lt;事業開発・企画&gt;</p> <ul><li>- 事業開発の経験</li><li>- 企画の実績</li></ul>",
           "<sup>1</sup> コンソーシアムの場合は構成員ごとに算定します。",
           "R&amp;D費は対象外 (H<sub>2</sub>O)"]
    texts = [line.text for line in logical_lines([raw])]
    assert "一般管理費率は10%とします。" in texts
    assert any(t.startswith("<事業開発・企画>") for t in texts)
    assert "※1 コンソーシアムの場合は構成員ごとに算定します。" in texts
    assert "R&D費は対象外 (H2O)" in texts
    assert not any("<sup>" in t or "&lt;" in t or "&amp;" in t for t in texts)


def test_an_over_long_run_on_unit_is_also_read_in_overlapping_parts() -> None:
    rows = [f"区分{n} 事業を行うために必要な物品{n}の購入に要する経費" for n in range(12)]
    text = " ".join(rows) + " 補助職員人件費 事業を実施するために必要な補助員(アルバイト等)に係る経費"
    assert len(text) > MAX_UNIT_CHARS
    units = units_of("text", "経費の区分", text, None)
    span = compact("補助職員人件費 事業を実施するために必要な補助員(アルバイト等)に係る経費")
    assert any(span in compact(u.text) for u in units), "the last row is read whole in some part"
    assert all(len(u.text) <= MAX_UNIT_CHARS for u in units)
    assert all(compact(row) in "".join(compact(u.text) for u in units) for row in rows)
