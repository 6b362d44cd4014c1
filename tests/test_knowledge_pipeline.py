"""Each stage of the answer pipeline on small fixtures, and the replies it leads to.

Stages: the general kind table, answer units, retrievers and fusion (with their ablation switches),
the learned ranker and calibrated gate, the edition check and the passed-deadline note, and the
replies when the bot is not sure (related excerpts) or nothing is related (outside this window).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bot.engine import Engine
from bot.messages import InboundMessage
from bot.services import Services
from bot.settings import Settings
from knowledge import kinds
from knowledge.learned import answer_from
from knowledge.replies import EXCERPT_CHARS
from knowledge.edition import Edition, asks_other_edition, dates_in, fiscal_years_said, passed_dates, read_edition
from knowledge.features import GATE_FEATURES, UNIT_FEATURES, candidates, gate_features, points_below
from knowledge.ingest import ingest_paths
from knowledge.model import (
    RANKER_FILE, AnswerModel, EnsembleRanker, Gate, LambdaRanker, Ranker, isotonic, load_model, precision_threshold)
from knowledge.retrieval import DEEP_RANK, Hit, IndexedChunk, Retrieval, RetrievalOptions, SourceInfo
from knowledge.unit_vectors import UnitVectors
from knowledge.service import SourceFilter
from knowledge.units import header_before, table_row_text, units_of
from tests.test_knowledge_retrieval import CALL_A, CALL_B


def _always(model: AnswerModel) -> AnswerModel:
    """The shipped model with a gate that answers everything (to test what a confident answer says), at a
    general entry point too."""
    return replace(model, gate=replace(model.gate, threshold=-1.0, general_threshold=None))


def _never(model: AnswerModel) -> AnswerModel:
    return replace(model, gate=replace(model.gate, threshold=2.0, general_threshold=None))


# ------------------------------------------------------------------------------------------ kind table
def test_the_kind_table_reads_several_kinds_and_yes_no_only_without_a_question_word() -> None:
    wanted = {k for k, v in kinds.asked("いつまでにいくら払えばいいですか").items() if v}
    assert {"date", "amount"} <= wanted
    assert kinds.asked("電話で問い合わせできますか")["yes_no"]
    assert not kinds.asked("どこで問い合わせできますか")["yes_no"]
    assert not any(kinds.asked("こんにちは").values())


def test_a_fact_is_looked_for_beyond_the_questions_own_words() -> None:
    assert kinds.facts("締切日：令和8年6月19日（金）15時必着")["date"]
    assert not kinds.facts("事務局は支援状況を把握します。", ["事務局"])["where"]
    assert not kinds.facts("平成11年5月14日法律第42号に基づく")["date"], "a law's number is no date"
    assert kinds.fact_strings("1泊9,800円を上限", ["amount"]) == {"9800円"}


# ------------------------------------------------------------------------------------------------ units
def test_a_list_item_unit_carries_the_sentence_that_introduces_its_list() -> None:
    text = "以下の場合には応募は無効となります。\n・提案書に虚偽が認められた場合\n・締切に遅れて提出された場合"
    units = units_of("text", "4. 注意事項", text, None)
    item = next(u for u in units if u.core.startswith("・提案書"))
    assert item.kind == "item" and item.text == "以下の場合には応募は無効となります。\n・提案書に虚偽が認められた場合"
    whole = next(u for u in units if u.kind == "list")
    assert whole.text.count("\n・") == 2, "the sentence opening a list is also a unit with its items"


def test_a_table_row_is_read_with_its_column_headers_even_from_an_earlier_passage() -> None:
    assert table_row_text(["区分", "単価"], "| 謝金 | 5,280円 |") == "区分: 謝金 / 単価: 5,280円"
    first, second = "| 区分 | 単価 |\n| 謝金 | 5,280円 |", "| 日当 | 1,100円 |\n本文です。"
    headers = header_before([first, second])
    assert headers == [None, ["区分", "単価"]]
    row = units_of("text", "", second, None, tuple(headers[1]))[0]
    assert row.kind == "row" and row.text == "区分: 日当 / 単価: 1,100円"


def test_a_value_on_a_line_of_its_own_is_read_with_the_label_above_it() -> None:
    """「令和6年6月3日(月)15時00分」 alone under 「(2)説明会の開催」 says nothing of what it is the date of: its unit
    reads 「説明会の開催：…」 (the heading's numbering left off), its core stays the line (the span is found there),
    and a sentence with words of its own is left as it is."""
    text = "(2)説明会の開催\n以下日時に行うので、5月31日までに登録してください。\n令和6年6月3日(月)15時00分"
    units = units_of("text", "6.応募手続き > (2)説明会の開催", text, None)
    value = next(u for u in units if u.core == "令和6年6月3日(月)15時00分")
    assert value.text == "説明会の開催：令和6年6月3日(月)15時00分" and value.kind == "sentence"
    lead = next(u for u in units if u.core.startswith("以下日時に"))
    assert lead.text == lead.core


def test_a_faq_entry_is_one_unit_its_answer() -> None:
    (unit,) = units_of("faq", "謝金", "Q: 謝金はいくら？\nA: 1時間5,280円です。", "1時間5,280円です。")
    assert unit.kind == "faq" and unit.text == "1時間5,280円です。" and unit.question == "謝金はいくら？"


# --------------------------------------------------------------------------------- retrievers, fusion
def test_each_retriever_can_be_switched_off_and_fusion_swapped(learned_calls: Services) -> None:
    index = learned_calls.knowledge.refresh(force=True)
    question = "みどり市の事業の締切はいつですか"
    try:
        index.options = RetrievalOptions(bm25=False)
        assert all(h.bm25_rank is None for h in index.search(question).hits)
        index.options = RetrievalOptions(dense=False)
        assert all(h.dense_rank is None for h in index.search(question).hits)
        index.options = RetrievalOptions()
        weighted = {h.chunk.id: h.score for h in index.search(question).hits}
        index.options = RetrievalOptions(fusion="rrf")
        rrf = {h.chunk.id: h.score for h in index.search(question).hits}
        assert rrf and any(abs(rrf[c] - weighted[c]) > 1e-6 for c in rrf if c in weighted)
    finally:
        index.options = RetrievalOptions()


def test_passages_one_retriever_ranks_high_stay_candidates_below_the_fused_cut(learned_calls: Services) -> None:
    """Fusion may put a passage BM25 (or e5) ranks among its best below the fused cut: with
    RetrievalOptions(deep=True) its units still compete (`Retrieval.deeper`, pooled by the learned pipeline);
    the classic answerer's hits are unchanged. Off by default (docs/BENCHMARKS.md: it costs precision)."""
    index = learned_calls.knowledge.refresh(force=True)
    question = "あおぞら県の事業で宿泊費の上限はいくらですか"
    assert not index.search(question, k=1).deeper
    try:
        index.options = RetrievalOptions(deep=True)
        full = index.search(question)
        cut = index.search(question, k=1)
        assert [h.chunk.id for h in cut.hits if h.chunk.kind != "faq"] == [full.hits[0].chunk.id]
        assert cut.deeper, "the retrievers' own best passages below the cut are kept"
        for hit in cut.deeper:
            assert hit.chunk.id not in {h.chunk.id for h in cut.hits}
            assert min(r for r in (hit.bm25_rank, hit.dense_rank) if r is not None) < DEEP_RANK
        assert {h.chunk.id for h in cut.deeper} <= {c.hit.chunk.id for c in candidates(cut)}
    finally:
        index.options = RetrievalOptions()


def test_the_answer_units_come_from_the_fused_ranking_down_to_the_pool_depth(learned_calls: Services) -> None:
    """The learned pipeline reads the units of the passages below the search's top k down to
    RetrievalOptions.pool (`Retrieval.further`); the top k the classic answerer reads is unchanged."""
    index = learned_calls.knowledge.refresh(force=True)
    question = "あおぞら県の事業で宿泊費の上限はいくらですか"
    try:
        index.options = RetrievalOptions(pool=3)
        full = [h for h in index.search(question, k=20).hits if h.chunk.kind != "faq"]
        cut = index.search(question, k=1)
        assert [h.chunk.id for h in cut.hits if h.chunk.kind != "faq"] == [full[0].chunk.id]
        assert [h.chunk.id for h in cut.further] == [h.chunk.id for h in full[1:3]]
        assert {h.chunk.id for h in full[:3]} <= {c.hit.chunk.id for c in candidates(cut)}
    finally:
        index.options = RetrievalOptions()


def test_the_faq_retriever_finds_an_entry_asked_in_other_words(learned_sample_kb: Services) -> None:
    retrieval = learned_sample_kb.knowledge.retrieve("専門家って1年で何回まで来てもらえるの？")
    assert retrieval.faq, "every FAQ entry is scored against the question"
    best = max(retrieval.faq, key=lambda chunk_id: retrieval.faq[chunk_id][2])
    faq_hits = [h for h in retrieval.hits if h.chunk.id == best]
    assert faq_hits and "何回まで" in faq_hits[0].chunk.text


# ------------------------------------------------------------------------------------ features, model
def test_unit_features_have_one_value_per_name_and_mark_the_kind_asked_for(learned_calls: Services) -> None:
    retrieval = learned_calls.knowledge.retrieve("あおぞら県観光人材育成事業の締切はいつですか")
    index = retrieval.index
    found = candidates(retrieval, index.headers, index.positions, retrieval.faq, index.title_keys, index.title_tokens)
    assert found and all(len(c.features) == len(UNIT_FEATURES) for c in found)
    row = next(c for c in found if "7月31日" in c.unit.text)
    assert row.features[UNIT_FEATURES.index("match_date")] == 1.0
    assert not any(c.unit.core.startswith("令和8年度 あおぞら県") for c in found), "the cover line is no answer"


def test_the_pairwise_ranker_learns_which_unit_answers() -> None:
    rng = np.random.default_rng(1)
    groups = []
    for _ in range(40):
        x = rng.normal(size=(6, 3))
        y = np.zeros(6)
        y[np.argmax(x[:, 0] - x[:, 1])] = 1  # the answer: high first feature, low second
        groups.append((x, y))
    ranker = Ranker.fit(groups, ("a", "b", "c"))
    assert ranker.weights[0] > 0 > ranker.weights[1]
    right = sum(y[np.argmax(ranker.score(x))] for x, y in groups)
    assert right >= 36


def test_the_lambdarank_ranker_puts_the_answering_unit_first_and_round_trips(tmp_path: Path) -> None:
    """LightGBM lambdarank, grouped by question: on a small labeled set whose answer is the unit whose first
    feature is nearest 0 (a rule no linear weight can say), it ranks the answering unit first on questions
    it never saw, where the linear pairwise ranker cannot; its trees survive saving."""
    rng = np.random.default_rng(2)

    def group() -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(8, 3))
        y = np.zeros(8)
        y[np.argmin(np.abs(x[:, 0]))] = 1
        return x, y

    labeled = [group() for _ in range(150)]
    ranker = LambdaRanker.fit(labeled, ("a", "b", "c"))
    unseen = [group() for _ in range(40)]
    assert sum(y[np.argmax(ranker.score(x))] for x, y in unseen) >= 30
    linear = Ranker.fit(labeled, ("a", "b", "c"))
    assert sum(y[np.argmax(linear.score(x))] for x, y in unseen) < 15
    gate = Gate.fit(np.array([[0.0], [1.0]]), np.array([0.0, 1.0]), ("p",))
    AnswerModel(ranker, gate).save(tmp_path / "model.json")
    again = AnswerModel.from_json(json.loads((tmp_path / "model.json").read_text(encoding="utf-8")), tmp_path)
    assert (tmp_path / RANKER_FILE).is_file()
    assert np.allclose(again.ranker.score(unseen[0][0]), ranker.score(unseen[0][0]))


def test_the_ensemble_ranker_sums_the_trees_and_the_linear_score_and_round_trips(tmp_path: Path) -> None:
    """The shipped ranker: the lambdarank trees' score plus the linear ranker's (times its share), saved as the
    trees' file and the linear weights in the JSON model."""
    rng = np.random.default_rng(3)
    groups = []
    for _ in range(60):
        x = rng.normal(size=(6, 3))
        y = np.zeros(6)
        y[np.argmax(x[:, 0])] = 1
        groups.append((x, y))
    ensemble = EnsembleRanker.fit(groups, ("a", "b", "c"))
    x = groups[0][0]
    assert np.allclose(ensemble.score(x), ensemble.trees.score(x) + ensemble.share * ensemble.linear.score(x))
    assert sum(y[np.argmax(ensemble.score(x))] for x, y in groups) >= 50
    gate = Gate.fit(np.array([[0.0], [1.0]]), np.array([0.0, 1.0]), ("p",))
    AnswerModel(ensemble, gate).save(tmp_path / "model.json")
    again = AnswerModel.from_json(json.loads((tmp_path / "model.json").read_text(encoding="utf-8")), tmp_path)
    assert isinstance(again.ranker, EnsembleRanker) and (tmp_path / RANKER_FILE).is_file()
    assert np.allclose(again.ranker.score(x), ensemble.score(x))


def _column(found: list, name: str) -> np.ndarray:
    return np.array([c.features[UNIT_FEATURES.index(name)] for c in found])


def test_context_features_compare_each_unit_with_the_questions_other_candidates(learned_calls: Services) -> None:
    """Ranks under each scorer, the margin over the best unit of another passage and over the best of its
    own passage, and the coverage of the units beside it: each computed over all of a question's candidates."""
    retrieval = learned_calls.knowledge.retrieve("あおぞら県観光人材育成事業の締切はいつですか")
    index = retrieval.index
    found = candidates(retrieval, index.headers, index.positions, retrieval.faq, index.title_keys,
                       index.title_tokens, index.unit_vectors)
    assert len({c.hit_no for c in found}) > 1, "units of several passages compete"
    cov, rank, margin = _column(found, "cov_path"), _column(found, "rank_cov_path"), _column(found, "margin_cov_path")
    best = int(np.argmax(rank))
    assert rank[best] == 1.0 and cov[best] == cov.max() and margin[best] >= 0
    assert all(r < 1.0 for i, r in enumerate(rank) if i != best)
    others = [i for i, c in enumerate(found) if c.hit_no != found[best].hit_no]
    assert all(margin[i] <= 0 for i in others), "only the best passage's units are ahead of other passages"
    inside = _column(found, "in_passage_cov")
    for passage in {c.hit_no for c in found}:
        own = [i for i, c in enumerate(found) if c.hit_no == passage]
        assert max(inside[i] for i in own) == 0.0 and all(inside[i] <= 0 for i in own)
    cov_unit, following = _column(found, "cov_unit"), _column(found, "next_cov")
    for i in range(len(found) - 1):
        same_passage = found[i + 1].hit_no == found[i].hit_no
        assert following[i] == (cov_unit[i + 1] if same_passage else 0.0)
    fused = _column(found, "rank_fused")
    assert 0 < fused.min() <= fused.max() <= 4.0, "the reciprocal ranks of four scorers, scaled by their damping"
    dated = next(i for i, c in enumerate(found) if "7月31日" in c.unit.text)
    assert _column(found, "ask_date").min() == 1.0, "the question's kinds are given with every unit"
    assert _column(found, "has_date")[dated] == 1.0 and _column(found, "kind_share")[dated] > 0


def test_bm25_of_a_unit_prefers_the_shorter_unit_saying_the_same_words() -> None:
    """Two units cover the question's word alike; BM25's length normalization favours the one that says
    little else (a run-on sentence covers words by length alone)."""
    source = SourceInfo(1, "call.md", "call", "call.md")
    text = ("宿泊費は実費を支給します。\n"
            "交通費と日当と宿泊費と謝金と消耗品費と印刷製本費と通信運搬費と会議費と借料と雑役務費は別表のとおり精算します。")
    chunk = IndexedChunk("c1", 1, "text", "4. 経費", None, text, None, ())
    retrieval = Retrieval("宿泊費は出る？", ["宿泊費"], [Hit(chunk, source, 1.0)], idf={"宿泊費": 2.0})
    short, long_ = candidates(retrieval)
    assert _column([short], "cov_unit")[0] == _column([long_], "cov_unit")[0] == 1.0
    assert _column([short], "bm25_unit")[0] > _column([long_], "bm25_unit")[0]
    assert _column([short], "rank_bm25_unit")[0] == 1.0 and _column([long_], "prev_cov")[0] == 1.0


def _two_passages() -> Retrieval:
    """A question about 宿泊費 with two passages retrieved: two units in the first, one in the second."""
    source = SourceInfo(1, "call.md", "call", "call.md")
    first = IndexedChunk("c1", 1, "text", "4. 経費", None, "宿泊費は実費を支給します。\n日当は出ません。", None, ())
    second = IndexedChunk("c2", 1, "text", "5. 報告", None, "宿泊費の領収書を提出します。", None, ())
    return Retrieval("宿泊費は出る？", ["宿泊費"], [Hit(first, source, 1.0), Hit(second, source, 0.5)],
                     idf={"宿泊費": 2.0})


def test_the_gate_reads_the_rankers_margin_over_the_best_unit_of_another_passage() -> None:
    """A second unit of the best unit's own passage is no rival: the margin is over the other passage."""
    retrieval = _two_passages()
    found = candidates(retrieval)
    for candidate, score in zip(found, (3.0, 2.5, 1.0), strict=True):
        candidate.score = score
    x = dict(zip(GATE_FEATURES, gate_features(retrieval, found).tolist(), strict=True))
    assert x["margin_passage"] == 2.0 and x["gap_second"] == 0.5
    assert x["rank_cov_path"] == 1.0 and x["bm25_unit"] > 0


def test_the_gate_knows_a_best_unit_that_points_to_the_lines_below_it_instead_of_saying_them() -> None:
    """「以下日時に…5月31日までに登録してください」 was answered, alone, to 「説明会はいつ？」: it states the
    registration deadline, and the briefing's date stands lines below. The gate sees such a sentence; a bound
    (「10名以下」), a definition (「（以下「事務局」という。）」) and a list read with its items are not such."""
    source = SourceInfo(1, "call.md", "call", "call.md")
    text = ("以下日時にオンラインで行うので、5月31日までに連絡先を登録してください。\n"
            "参加者は10名以下とします。\n株式会社A（以下「事務局」という。）が運営します。\n"
            "提出は下記URLから行うこと。\n必要書類は次のとおり。\n次の書類を提出すること。\n・提案書")
    chunk = IndexedChunk("c1", 1, "text", "2. 説明会", None, text, None, ())
    retrieval = Retrieval("説明会はいつ？", ["説明会"], [Hit(chunk, source, 1.0)], idf={"説明会": 2.0})
    found = candidates(retrieval)
    pointing = {c.unit.text for c in found if points_below(c.unit)}
    assert pointing == {"以下日時にオンラインで行うので、5月31日までに連絡先を登録してください。",
                        "提出は下記URLから行うこと。", "必要書類は次のとおり。"}
    by_text = {c.unit.text: c for c in found}
    for text_shown, expected in (("以下日時にオンラインで行うので、5月31日までに連絡先を登録してください。", 1.0),
                                 ("参加者は10名以下とします。", 0.0), ("次の書類を提出すること。\n・提案書", 0.0)):
        best = by_text[text_shown]
        ranked = [best, *(c for c in found if c is not best)]
        x = dict(zip(GATE_FEATURES, gate_features(retrieval, ranked).tolist(), strict=True))
        assert x["points_below"] == expected, text_shown


def test_an_unsure_reply_quotes_the_best_unit_of_a_second_passage_however_far_below_it_is_rated() -> None:
    """The second excerpt is the best unit of another passage (a second unit of the first passage is skipped),
    whatever its score: it holds the answer often enough to be worth a line (benchmarks/excerpt_eval.py)."""
    from knowledge.learned import excerpt_picks

    retrieval = _two_passages()
    found = candidates(retrieval)
    for candidate, score in zip(found, (9.0, 8.5, -4.0), strict=True):
        candidate.score = score
    picks = excerpt_picks(sorted(found, key=lambda c: c.score, reverse=True))
    assert [(text, hit.chunk.id) for text, hit in picks] == [("宿泊費は実費を支給します。", "c1"),
                                                             ("宿泊費の領収書を提出します。", "c2")]


def test_unit_vectors_rank_the_unit_that_means_the_question_and_are_kept_by_hash(learned_calls: Services) -> None:
    """Each unit's own e5 vector against the question's: the unit about lodging is nearer 「ホテル代」 than
    one about the deadline. The vectors are kept in the cache table: a new process embeds nothing."""
    kb = learned_calls.knowledge
    texts = ["宿泊費は1泊9,800円を上限として支給します。", "応募の締切日は令和8年7月31日（金）17時必着です。"]
    query = kb.refresh().query_vector("ホテル代って出る？")
    near = kb.unit_vectors.similarity(query, texts)
    assert near[0] > near[1]
    fresh = UnitVectors(learned_calls.db, kb.embeddings)
    assert np.allclose(fresh.similarity(query, texts), near, atol=1e-5) and fresh.embedded == 0


def test_ingest_with_the_learned_pipeline_embeds_each_unit_once(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "call.md").write_text(CALL_B, encoding="utf-8")
    services = Services.create(Settings(data_dir=tmp_path / "data", knowledge={"pipeline": "learned"}))
    try:
        first = ingest_paths(services, [docs])
        assert first.units_embedded > 0
        again = ingest_paths(services, [docs], reset=True)
        assert again.units_embedded == 0, "every unit's vector comes from the cache table"
    finally:
        services.close()


def test_isotonic_calibration_is_monotone_and_the_threshold_reaches_the_precision() -> None:
    raw = np.linspace(0, 1, 200)
    y = (raw > 0.6).astype(float)
    y[[130, 150]] = 0  # two wrong answers among the likely ones
    knots_x, knots_y = isotonic(raw, y)
    assert np.all(np.diff(knots_y) >= 0)
    threshold = precision_threshold(raw, y, 0.95)
    given = raw >= threshold
    assert y[given].mean() >= 0.95 and given.sum() > 50
    assert precision_threshold(raw, np.zeros(200), 0.95) > 1.0, "no threshold reaches it: answer nothing"


def test_the_threshold_can_be_read_per_document_or_by_the_lower_bound_of_its_precision() -> None:
    """Pooled, one document's many wrong answers hide among the others' right ones; "fold-min" holds every
    document to the target, and "wilson" asks for enough answers to prove it (few prove little)."""
    raw = np.linspace(0, 1, 300)
    folds = np.arange(300) % 3
    y = (raw > 0.5).astype(float)
    y[(folds == 2) & (raw > 0.5) & (raw < 0.8)] = 0.0  # the third document's middling answers are wrong
    pooled = precision_threshold(raw, y, 0.9)
    per_document = precision_threshold(raw, y, 0.9, folds, "fold-min")
    assert per_document > pooled
    given = raw >= per_document
    assert all(y[given & (folds == f)].mean() >= 0.9 for f in range(3))
    assert precision_threshold(raw, y, 0.9, criterion="wilson") > pooled
    few = np.array([0.2, 0.9, 0.95]), np.array([0.0, 1.0, 1.0])
    assert precision_threshold(*few, 0.9) == 0.9, "two right answers reach 90% pooled"
    assert precision_threshold(*few, 0.9, criterion="wilson") > 1.0, "but prove nothing"
    with pytest.raises(ValueError):
        precision_threshold(raw, y, 0.9, criterion="fold-min")


def test_the_gate_round_trips_through_json_and_the_shipped_model_matches_the_features(tmp_path: Path) -> None:
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.9, 0.1], [0.1, 0.8]])
    gate = Gate.fit(x, np.array([0.0, 1.0, 1.0, 0.0]), ("p", "q"))
    gate.calibrate(gate.raw(x), np.array([0.0, 1.0, 1.0, 0.0]))
    model = AnswerModel(Ranker(np.ones(2), np.zeros(2), np.ones(2), ("p", "q")), gate)
    path = tmp_path / "model.json"
    model.save(path)
    again = AnswerModel.from_json(json.loads(path.read_text(encoding="utf-8")))
    assert np.allclose(again.gate.raw(x), gate.raw(x), atol=1e-5) and again.gate.threshold == gate.threshold
    shipped = load_model()
    assert shipped.ranker.names == UNIT_FEATURES and shipped.gate.names == GATE_FEATURES


def test_a_general_entry_point_reads_the_gates_stricter_general_threshold(tmp_path: Path) -> None:
    """At `/` of an installation with several programs every program's document is a candidate, so the gate
    keeps a threshold of its own there (never below the window's); it round-trips through the model file, and
    a model file without one answers the same everywhere."""
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.9, 0.1], [0.1, 0.8]])
    gate = Gate.fit(x, np.array([0.0, 1.0, 1.0, 0.0]), ("p", "q"))
    raw = gate.raw(x)
    middle = float(np.sort(raw)[2])
    gate.threshold, gate.general_threshold = middle - 1e-6, float(raw.max()) + 1e-6
    assert gate.confident(x).sum() == 2 and not gate.confident(x, general=True).any()
    assert gate.threshold_for(True) == gate.general_threshold and gate.threshold_for(False) == gate.threshold
    gate.general_threshold = middle - 1.0  # a general threshold below the window's is read as the window's
    assert gate.threshold_for(True) == gate.threshold
    gate.general_threshold = float(raw.max()) + 1e-6
    model = AnswerModel(Ranker(np.ones(2), np.zeros(2), np.ones(2), ("p", "q")), gate)
    model.save(tmp_path / "model.json")
    data = json.loads((tmp_path / "model.json").read_text(encoding="utf-8"))
    again = AnswerModel.from_json(data)
    assert again.gate.general_threshold == gate.general_threshold and not again.gate.confident(x, True).any()
    del data["gate"]["general_threshold"]
    older = AnswerModel.from_json(data).gate
    assert older.general_threshold is None and (older.confident(x, True) == older.confident(x)).all()


def test_the_chat_at_a_general_entry_point_answers_only_past_the_general_threshold(
        learned_sample_kb: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample installation has two programs: the same question is answered at /p/expert-dispatch/ and, with
    a general threshold no score reaches, handed over honestly at the general entry point."""
    import knowledge.learned as learned

    question = "旅費に含まれるのは何ですか"
    strict = replace(_always(load_model()), gate=replace(_always(load_model()).gate, general_threshold=2.0))
    monkeypatch.setattr(learned, "load_model", lambda: strict)
    # the operator's threshold (it can only make the gate stricter) out of the way: the gate alone decides
    monkeypatch.setattr(learned_sample_kb.settings.knowledge, "answer_threshold", 0.0)
    engine = Engine(learned_sample_kb)
    inside = engine.handle(InboundMessage(channel="web", program="expert-dispatch", external_user_id="g1",
                                          text=question))[0]
    general = engine.handle(InboundMessage(channel="web", external_user_id="g2", text=question))[0]
    assert inside.meta["confident"] and inside.meta["outcome"] == "answered", inside.text
    assert not general.meta["confident"] and general.meta["outcome"] in ("unsure", "which_program"), general.text
    assert "担当者" in general.text


# ------------------------------------------------------------------------------------- edition, time
def test_the_edition_is_read_from_the_cover_or_a_metadata_file(tmp_path: Path) -> None:
    lines = ["令和8年度 みどり市地域デジタル推進事業 公募要領", "募集期間：令和8年5月1日(金)～令和8年6月19日(金)"]
    edition = read_edition("令和8年度 みどり市地域デジタル推進事業 公募要領", "みどり市地域デジタル推進事業", lines)
    assert edition.fiscal_year == 2026
    assert (edition.window_start, edition.window_end) == (date(2026, 5, 1), date(2026, 6, 19))
    assert "令和8年度版" in edition.describe()
    document = tmp_path / "call.md"
    Path(f"{document}.meta.yaml").write_text("program: みどり事業\nfiscal_year: 令和9年度\nwindow_end: 2027-06-30\n",
                                              encoding="utf-8")
    meta = read_edition("公募要領", "x", [], str(document))
    assert (meta.program, meta.fiscal_year, meta.window_end) == ("みどり事業", 2027, date(2027, 6, 30))


def test_a_month_and_day_fall_in_the_editions_fiscal_year() -> None:
    assert dates_in("締切は3月18日、説明会は4月14日", 2025) == [date(2026, 3, 18), date(2025, 4, 14)]


def test_another_fiscal_year_or_round_is_another_edition() -> None:
    held = [Edition("みどり", 2026)]
    assert asks_other_edition("令和7年度の締切はいつでしたか", held) == "year"
    assert asks_other_edition("令和8年度の締切はいつですか", held) is None
    assert asks_other_edition("2次公募はありますか", held, corpus_text="1次締切") == "round"
    assert asks_other_edition("去年の締切はいつ？", held) == "relative"
    assert asks_other_edition("締切はいつですか", held) is None


def test_the_words_of_a_fiscal_year_held_name_the_edition_not_the_topic(learned_calls: Services) -> None:
    """「令和8年度の締切」: 令和, 8 and 年度 say which edition, as a title's words say which document; they are
    name words (weighed as such by every stage), and a year no source is names nothing."""
    assert fiscal_years_said("令和8年度と2027年度、平成元年度") == [(2026, "令和8年度"), (2027, "2027年度"),
                                                                (1989, "平成元年度")]
    index = learned_calls.knowledge.scoped(None)
    said = index.search("あおぞら県観光人材育成事業の令和8年度の締切はいつですか")
    assert {"令和", "8", "年度"} <= said.name_tokens
    assert said.idf["年度"] < index.search("締切の年度はいつですか").idf["年度"]
    assert not {"令和", "7"} & index.search("令和7年度の締切はいつですか").name_tokens


def test_a_question_about_another_fiscal_year_is_declined_naming_the_edition_held(learned_calls: Services) -> None:
    answer = learned_calls.knowledge.ask("みどり市地域デジタル推進事業の令和7年度の締切はいつでしたか")
    assert answer.kind == "other_edition" and not answer.confident
    assert "令和8年度版" in answer.body and "みどり市地域デジタル推進事業" in answer.body
    reply = Engine(learned_calls).handle(InboundMessage(channel="cli", external_user_id="u",
                                                text="令和7年度のあおぞら県観光人材育成事業の締切は？"))
    assert "令和8年度版" in reply[0].text and "担当者" in reply[0].text


def test_a_deadline_that_has_passed_says_so(learned_calls: Services) -> None:
    retrieval = learned_calls.knowledge.retrieve("あおぞら県観光人材育成事業の締切はいつですか")
    model = _always(load_model())
    after = answer_from(retrieval, model=model, today=date(2026, 8, 1))
    assert after.confident and "7月31日" in after.body
    assert "すでに過ぎています" in after.note and "令和8年7月31日" in after.note
    assert after.note in after.text and after.text.index(after.body) < after.text.index(after.note)
    before = answer_from(retrieval, model=model, today=date(2026, 7, 1))
    assert before.note == ""
    assert passed_dates("締切日：7月31日必着", Edition("x", 2026), date(2026, 8, 1)) == [date(2026, 7, 31)]
    assert passed_dates("研修は7月31日に行います", Edition("x", None), date(2026, 8, 1)) == []


def test_a_programs_name_said_in_its_own_window_names_it_and_is_no_topic(learned_calls: Services) -> None:
    """A program's window steers to no document (there is no other), yet 「あおぞら県観光人材育成事業の締切は」
    names the program: its words are name words there too, so the deadline, not the program's introduction,
    is what is shown first; a shorter run of the name (観光人材) is a topic."""
    window = SourceFilter("aozora", lambda p: "aozora" in p)
    retrieval = learned_calls.knowledge.retrieve("あおぞら県観光人材育成事業の締切はいつですか", sources=window)
    assert retrieval.steered_source is None and {"観光", "人材", "育成", "事業"} <= retrieval.name_tokens
    assert "7月31日" in answer_from(retrieval, model=_never(load_model())).excerpts[0].text
    assert not learned_calls.knowledge.retrieve("観光人材の研修の内容は", sources=window).name_tokens


# --------------------------------------------------------------------------------------------- replies
def test_an_unsure_reply_quotes_short_related_excerpts_and_offers_a_person(learned_calls: Services) -> None:
    retrieval = learned_calls.knowledge.retrieve("あおぞら県観光人材育成事業の締切はいつですか")
    answer = answer_from(retrieval, model=_never(load_model()))
    assert answer.kind == "unsure" and not answer.confident
    assert 1 <= len(answer.excerpts) <= 2
    assert all(len(e.text) <= EXCERPT_CHARS for e in answer.excerpts)
    assert any("7月31日" in e.text for e in answer.excerpts)
    assert all("／" in e.where for e in answer.excerpts), "each excerpt says where it stands"
    assert answer.body.startswith("関係しそうな記載")


def test_the_chat_reply_when_unsure_shows_the_excerpts(learned_calls: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    import knowledge.learned as learned

    monkeypatch.setattr(learned, "load_model", lambda: _never(load_model()))
    learned_calls.knowledge._answers.clear()
    reply = Engine(learned_calls).handle(InboundMessage(channel="cli", external_user_id="u2",
                                                text="あおぞら県観光人材育成事業の締切はいつですか"))
    text = reply[0].text
    assert "関係しそうな記載" in text and "7月31日" in text and "担当者" in text
    assert reply[0].options and reply[0].options[0].value == "contact:human"
    learned_calls.knowledge._answers.clear()


def test_a_question_nothing_relates_to_is_outside_this_window_without_documents(learned_calls: Services) -> None:
    answer = learned_calls.knowledge.ask("肉じゃがのおいしい作り方を教えて")
    assert answer.kind == "outside" and not answer.confident and not answer.excerpts
    reply = Engine(learned_calls).handle(InboundMessage(channel="cli", external_user_id="u3", text="肉じゃがのおいしい作り方を教えて"))
    text = reply[0].text
    assert "範囲外" in text and "担当者" in text
    assert "公募要領" not in text and "みどり市" not in text and "あおぞら県" not in text


def test_ingest_shows_each_sources_edition(tmp_path: Path) -> None:
    from integrations.cli_root import app

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "midori-dx-call.md").write_text(CALL_A, encoding="utf-8")
    (docs / "midori-dx-call.md.meta.yaml").write_text("window_end: 2026-06-19\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["knowledge", "ingest", str(docs)],
                                env={"MADOGUCHI_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    assert "edition" in result.output and "files: 1" in result.output, "the metadata file is no document"
    services = Services.create(Settings(data_dir=tmp_path / "data"))
    (report,) = ingest_paths(services, [docs]).results  # unchanged: the edition is read from the index
    services.close()
    assert "令和8年度版" in report.edition and "2026-06-19" in report.edition, report.edition


def test_the_legacy_converter_points_at_the_shortest_span_on_the_best_matching_line() -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "questions" / "legacy_to_bank.py"
    spec = importlib.util.spec_from_file_location("legacy_to_bank", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    assert module.shortest_span("謝金は１時間あたり５，２８０円とする。", "5280円") == "５，２８０円"
    document = "宿泊費は9,800円を上限とする。\n謝金は1時間あたり5,280円、宿泊費は別とする。"
    assert module.find_span(document, "謝金の時間単価は？", ["5280円"]) == "5,280円"
    assert module.out_of_scope_kind("令和5年度の締切は？") == "other_edition"
    assert module.out_of_scope_kind("IT導入補助金の補助率は？") == "adjacent_program"
