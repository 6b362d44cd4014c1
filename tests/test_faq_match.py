"""The FAQ question-matching stage (knowledge/faq_match.py): a FAQ entry, curated or staff-published,
answers a question asked in other words, and a near miss about something the entry does not say is left to
the unsure or outside replies. The entries' question vectors are e5 query vectors kept by content hash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from bot.engine import Engine
from bot.messages import InboundMessage
from bot.services import Services
from bot.settings import Settings
from handlers.escalation import tickets
from handlers.escalation.models import StaffAccount, Ticket
from handlers.escalation.staff import create as create_staff
from knowledge import faq_review, kinds
from knowledge.embeddings import build_embeddings
from knowledge.faq_match import (_ASKED_COUNTER, FAQ_MATCH_FEATURES, GATE_FEATURES, LONE_MARGIN, FaqEntry,
                                 FaqModel, _bm25, _counter_missing, _retrieved, entries, load_model, match, pair_features,
                                 question_vectors, save_model)
from knowledge.ingest import ingest_paths
from knowledge.model import Gate
from knowledge.retrieval import Hit, IndexedChunk, Retrieval, SourceInfo
from knowledge.unit_vectors import UnitVectors

SAMPLE_FAQ = Path(__file__).resolve().parents[1] / "sample_kb" / "expert-dispatch-faq.yaml"


def test_the_faq_questions_are_embedded_as_queries_and_kept_by_content_hash(learned_sample_kb: Services) -> None:
    embeddings = build_embeddings(learned_sample_kb.settings)
    questions = question_vectors(UnitVectors(learned_sample_kb.db, embeddings))
    question = "宿泊費はいくらまで出ますか？"
    vector = questions.vectors([question])[question]
    query = np.asarray(embeddings.embed_query(question), dtype=np.float32)
    passage = np.asarray(embeddings.embed_documents([question])[0], dtype=np.float32)
    assert float(vector @ query / np.linalg.norm(query)) > 0.999, "both sides are e5 queries"
    assert float(vector @ passage / np.linalg.norm(passage)) < 0.99, "not the passage vector of the question"
    # a new process finds it in the cache table: nothing embedded again
    fresh = question_vectors(UnitVectors(learned_sample_kb.db.unpooled(), embeddings))
    assert np.allclose(fresh.vectors([question])[question], vector) and fresh.embedded == 0


def test_ingest_keeps_the_query_vectors_of_the_faq_questions(tmp_path: Path) -> None:
    services = Services.create(Settings(data_dir=tmp_path / "data", knowledge={"pipeline": "learned"}))
    try:
        ingest_paths(services, [SAMPLE_FAQ])
        index = services.knowledge.refresh(force=True)
        found = entries(index)
        assert len(found) == 10
        fresh = question_vectors(UnitVectors(services.db.unpooled(), build_embeddings(services.settings)))
        fresh.vectors(e.question for e in found)
        assert fresh.embedded == 0, "ingest embedded every FAQ question already"
    finally:
        services.close()


def test_each_entry_is_scored_with_margins_over_the_best_other_entry(learned_sample_kb: Services) -> None:
    retrieval = learned_sample_kb.knowledge.retrieve("ホテル代って出る？")
    found, x = pair_features(retrieval)
    assert x.shape == (len(found), len(FAQ_MATCH_FEATURES)) and len(found) == 10
    column = {name: i for i, name in enumerate(FAQ_MATCH_FEATURES)}
    best = int(np.argmax(x[:, column["q_dense"]]))
    assert "宿泊費" in found[best].question
    assert x[best, column["forward"]] == 1.0, "ホテル代 is 宿泊費 by sudachidict's synonyms"
    margin = x[best, column["q_dense"]] - np.delete(x[:, column["q_dense"]], best).max()
    assert abs(x[best, column["q_dense_margin"]] - min(LONE_MARGIN, margin)) < 1e-9


def test_an_entrys_section_is_not_what_it_says_so_the_entry_on_the_word_wins(learned_sample_kb: Services) -> None:
    """Every entry under 「謝金・旅費」 stands in a section named for 謝金; only one says it."""
    index = learned_sample_kb.knowledge.refresh()
    lodging = next(e for e in entries(index) if "宿泊費" in e.question)
    assert lodging.chunk.section == "謝金・旅費" and "謝金" not in lodging.said_tokens
    answer = learned_sample_kb.knowledge.ask("謝金はいくらですか？")
    assert answer.confident and "5,280円" in answer.text, answer.text


def test_a_word_the_entry_says_nowhere_is_what_a_near_miss_asks(learned_sample_kb: Services) -> None:
    """The weightiest word of the question that the entry says neither in its question nor its answer (not
    even by a synonym): 朝食 for the 宿泊費 entry; a rewording leaves none."""
    column = {name: i for i, name in enumerate(FAQ_MATCH_FEATURES)}

    def lodging(question: str) -> np.ndarray:
        found, x = pair_features(learned_sample_kb.knowledge.retrieve(question))
        return x[next(i for i, e in enumerate(found) if "宿泊費" in e.question)]

    near_miss, rewording = lodging("ホテルの朝食代も宿泊費に入れていい？"), lodging("ホテル代って出る？")
    assert near_miss[column["uncovered_max"]] > 0.1, near_miss
    assert rewording[column["uncovered_max"]] == 0.0, rewording
    assert rewording[column["answer_cover"]] > near_miss[column["answer_cover"]], "the answer says more of it"


def test_a_count_of_another_unit_than_the_entry_states_is_marked(learned_sample_kb: Services) -> None:
    """「何人まで」 asks a number of people; the 回数 entry's answer states a number of times only. 「何回まで」
    is what it states."""
    column = FAQ_MATCH_FEATURES.index("counter_missing")

    def times(question: str) -> float:
        found, x = pair_features(learned_sample_kb.knowledge.retrieve(question))
        return float(x[next(i for i, e in enumerate(found) if "何回" in e.question), column])

    assert times("1回の派遣で専門家を何人まで呼べる？") == 1.0
    assert times("派遣って一年に何回まで来てもらえるの？") == 0.0
    assert times("派遣の回数に上限はある？") == 0.0, "no count of a unit asked"


def test_one_counter_table_gives_the_kinds_cues_and_facts_and_the_faq_stages_count_check() -> None:
    """The counters (助数詞) are one table (knowledge/kinds.py): 「何泊」 asks a count and 「1泊」 states one
    for the kinds of fact as for the FAQ stage's check of a number of the unit asked; 「何度も」 asks none."""
    assert kinds.asked("宿泊費は何泊まで出ますか")["count"]
    assert kinds.facts("宿泊費は1泊9,800円が上限です")["count"]
    assert kinds.asked("なん回まで来てもらえる？")["count"] and kinds.asked("1日なん時間まで？")["period"]
    assert not kinds.asked("何度も申請できますか")["count"]
    assert {m.group(1) for m in _ASKED_COUNTER.finditer("何泊で何人まで？")} == {"泊", "人"}
    assert set(kinds.COUNTERS) >= {"泊", "人", "時間", "か月", "km"}
    assert _counter_missing({"泊"}, "宿泊費は1泊9,800円が上限です") == 0.0
    assert _counter_missing({"人"}, "宿泊費は1泊9,800円が上限です") == 1.0


def test_a_rate_is_asked_by_its_unit_or_its_name_and_stated_per_one_unit() -> None:
    """「1時間いくら」「時給」「単価」 ask an amount per unit (from the counter table); 「1時間あたり5,280円」「1泊9,800円」
    state one, 「3回まで」 and a bare 「いくら」 do not."""
    assert all(kinds.asks_rate(q) for q in ("謝金の時間単価は？", "謝金は1時間いくら？", "車だとキロいくら？", "時給でいくら？"))
    assert not any(kinds.asks_rate(q) for q in ("謝金はいくらですか", "何回まで使える？", "ホテル代って出る？"))
    assert all(kinds.states_rate(t) for t in ("謝金は1時間あたり5,280円です", "1泊9,800円を上限に", "1kmあたり37円"))
    assert not any(kinds.states_rate(t) for t in ("原則3回までです", "平日10:00〜17:00に受け付けています"))


def test_the_kind_a_question_asks_is_read_against_what_each_entrys_answer_states(learned_sample_kb: Services) -> None:
    """「謝金の時間単価は？」 asks a rate: the 謝金 entry's answer (「1時間あたり5,280円」) states one, the entry about
    which hours count (no amount) does not."""
    found, x = pair_features(learned_sample_kb.knowledge.retrieve("謝金の時間単価は？"))
    stated, missing = FAQ_MATCH_FEATURES.index("kind_stated"), FAQ_MATCH_FEATURES.index("kind_missing")
    fee = next(i for i, e in enumerate(found) if "いくら" in e.question and "謝金" in e.question)
    hours = next(i for i, e in enumerate(found) if "メール" in e.question)
    assert (x[fee, stated], x[fee, missing]) == (1.0, 0.0)
    assert (x[hours, stated], x[hours, missing]) == (0.0, 1.0)
    assert "rate" not in found[fee].kinds, "the entry's own question asks an amount, not a rate"


def test_bm25_of_an_entry_discounts_a_long_text_saying_the_words_among_many(learned_sample_kb: Services) -> None:
    """The BM25 features read the question's words in an entry's question and in its answer, as a share of
    what an entry of average length saying them all scores: the 宿泊費 entry scores best on both for a
    question on its words, and an answer saying them among many others scores less than a short one."""
    retrieval = learned_sample_kb.knowledge.retrieve("宿泊費はいくらまで出ますか")
    found, x = pair_features(retrieval)
    hotel = next(i for i, e in enumerate(found) if "宿泊費" in e.question)
    for name in ("bm25_q", "bm25_a"):
        column = FAQ_MATCH_FEATURES.index(name)
        assert int(np.argmax(x[:, column])) == hotel, name
        assert x[hotel, FAQ_MATCH_FEATURES.index(f"{name}_margin")] > 0
    words = frozenset(found[hotel].answer_tokens)
    padding = frozenset(f"語{i}" for i in range(40))
    assert _bm25(retrieval, words | padding, len(words)) < _bm25(retrieval, words, len(words))


def test_an_entry_the_retrievers_rank_below_another_documents_passages_is_marked() -> None:
    """「アドバイザリーボードの専門家の謝金は？」 finds another program's passages before the sample FAQ's 謝金
    entry: the entry's passage ranked below other documents' passages (not below its own document's) scores
    lower, and an entry the retrievers did not bring scores 0."""
    def chunk(name: str, source: int) -> IndexedChunk:
        return IndexedChunk(name, source, "text", "", None, name, None, ())

    faq, own, other, missing = chunk("faq", 1), chunk("own", 1), chunk("other", 2), chunk("missing", 1)
    source = SourceInfo(1, "doc", "doc", "doc")

    def retrieved(order: list[IndexedChunk], target: IndexedChunk) -> float:
        hits = [Hit(c, source, 1.0) for c in order]
        return _retrieved(Retrieval("q", [], hits), FaqEntry(target, "q", "a", frozenset(), frozenset(),
                                                              frozenset(), frozenset()))

    assert retrieved([faq, other], faq) == 1.0
    assert retrieved([own, faq, other], faq) == 1.0, "its own document's passages are no other answer"
    assert retrieved([other, own, faq], faq) == 0.5
    assert retrieved([other, faq], missing) == 0.0


def _faq_match_eval(monkeypatch: pytest.MonkeyPatch, name: str = "faq_match_eval"):  # type: ignore[no-untyped-def]
    """benchmarks/faq_match_eval.py (or another benchmark script) as a module (its settings of the environment and
    the modules it imports undone after the test)."""
    import importlib.util
    import sys

    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.setenv(variable, "1")
    monkeypatch.setenv("MADOGUCHI_KNOWLEDGE__PIPELINE", "learned")
    monkeypatch.setattr(sys, "path", list(sys.path))
    benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
    spec = importlib.util.spec_from_file_location(name, benchmarks / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, name, module)  # its dataclasses look their module up
    before = set(sys.modules)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    for script in {m.stem for m in benchmarks.glob("*.py")} & (set(sys.modules) - before):
        monkeypatch.setitem(sys.modules, script, sys.modules.pop(script))  # the scripts it imports: gone after
    return module


def test_the_product_evaluation_trains_the_faq_stage_on_nothing_of_the_document_left_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/product_eval.py leaves a document out of the FAQ stage's training as of the unit pipeline's:
    its questions asked of any entry and its passage entries; for the sample FAQ's program (one fold), every
    pair with a sample FAQ entry, since those entries are that document."""
    product = _faq_match_eval(monkeypatch, "product_eval")
    import sys

    bench = sys.modules["faq_match_eval"]

    def pairs(document: str, index: str) -> object:
        return bench.Pairs(f"{document}-{index}", "q", document, True, index, False, [], [], [],
                           np.zeros((0, len(FAQ_MATCH_FEATURES))))

    kanto, mic = "kanto-successor-network-call.md", "mic-regional-dx-call.md"
    made = [pairs(kanto, "passages"), pairs(kanto, "corpus"), pairs("expert-dispatch-faq.yaml", "sample"),
            pairs("expert-dispatch-guide.md", "sample"), pairs(mic, "corpus"), pairs(mic, "passages")]
    assert [p.id for p in product.faq_training(made, kanto)] == [
        "expert-dispatch-faq.yaml-sample", "expert-dispatch-guide.md-sample", f"{mic}-corpus", f"{mic}-passages"]
    assert [p.id for p in product.faq_training(made, "sample_kb")] == [f"{kanto}-passages", f"{mic}-passages"]


def test_a_documents_questions_asked_of_one_passage_make_a_training_entry(learned_sample_kb: Services,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The FAQ stage learns from hundreds of entries, not the sample's ten: two bank questions answered by
    one answer unit of a document make an entry (the polite question, that unit its answer), which the
    other questions of the document are then asked of; a fact asked once makes none."""
    bench = _faq_match_eval(monkeypatch)
    guide = "expert-dispatch-guide.md"
    rows = [{"id": "q1", "question": "先生のお礼って時給いくら？", "document": guide, "style": "casual",
             "answer_span": "1時間あたり5,280円"},
            {"id": "q2", "question": "謝金は1時間いくらですか", "document": guide, "style": "polite",
             "answer_span": "1時間あたり5,280円（税込）"},
            {"id": "q3", "question": "謝金の振込は月に何回？", "document": guide, "style": "polite",
             "answer_span": "月に1回以上"},
            {"id": "q4", "question": "謝金に消費税はかかる？", "document": guide, "in_scope": False}]
    index = learned_sample_kb.knowledge.refresh()
    made, asked, cores = bench.passage_entries(index, rows)
    assert [e.question for e in made] == ["謝金は1時間いくらですか"] and asked == {"q2"}
    assert cores == {made[0].answer: made[0].answer}, "the entry's unit is one sentence: its core is itself"
    assert "5,280円" in made[0].answer and made[0].chunk is not None and "5,280円" in made[0].chunk.text
    found, x = pair_features(learned_sample_kb.knowledge.retrieve("先生のお礼って時給いくら？"), made)
    assert found == made and x.shape == (1, len(FAQ_MATCH_FEATURES))
    assert list(bench.labels(True, ["5,280円"], [made[0].answer])) == [1.0]


def test_the_faq_model_round_trips_and_the_shipped_one_matches_the_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, len(FAQ_MATCH_FEATURES)))
    y = (x[:, 0] > 0).astype(float)
    gate_x = np.hstack([x, rng.normal(size=(40, 2))])
    model = FaqModel(Gate.fit(x, y, FAQ_MATCH_FEATURES), Gate.fit(gate_x, y, GATE_FEATURES), "test")
    save_model(model, tmp_path / "faq.json")
    loaded = load_model(tmp_path / "faq.json")
    assert loaded is not None and np.allclose(loaded.scorer.raw(x), model.scorer.raw(x))
    assert np.allclose(loaded.gate.raw(gate_x), model.gate.raw(gate_x))
    assert load_model() is not None, "a FAQ model is shipped (knowledge/models/faq_match.json)"
    assert json.loads((tmp_path / "faq.json").read_text(encoding="utf-8"))["trained_on"] == "test"


def test_a_colloquial_rewording_is_answered_with_its_entry_cited_to_the_faq(learned_sample_kb: Services) -> None:
    answer = learned_sample_kb.knowledge.ask("専門家派遣は年に何回まで使えますか")
    assert answer.confident and answer.kind == "faq", answer
    assert "原則3回まで" in answer.text
    assert [c.source for c in answer.citations] == ["expert-dispatch-faq.yaml"], "cited to its FAQ alone"
    assert "faq_q_dense" in answer.features, "the FAQ stage answered"
    hotel = learned_sample_kb.knowledge.ask("ホテル代って出る？")  # what `make chat` is first asked
    assert hotel.confident and "9,800円" in hotel.text and hotel.citations[0].source == "expert-dispatch-faq.yaml"


def test_a_colloquial_rewording_asking_a_rate_is_answered_by_the_entry_stating_it(learned_sample_kb: Services) -> None:
    """「日当って1日いくらもらえるの？」 asks the 日当 entry (「日当はどんなときに出ますか？」) for its 「1日あたり1,100円」
    in chat words: the FAQ stage reads the kind asked (a rate, 「1日いくら」) against the kind its answer states
    and answers with the entry; a near miss on an entry's topic asking a fact it does not state (the phone
    number, where it gives hours) is still declined."""
    answer = learned_sample_kb.knowledge.ask("日当って1日いくらもらえるの？")
    assert answer.confident and answer.kind == "faq" and "1,100円" in answer.text, answer
    assert [c.source for c in answer.citations] == ["expert-dispatch-faq.yaml"]
    number = learned_sample_kb.knowledge.ask("電話窓口の電話番号を教えて")
    assert not number.confident and number.kind == "unsure", number


def test_a_near_miss_is_not_answered_with_the_entry_it_resembles(learned_sample_kb: Services) -> None:
    retrieval = learned_sample_kb.knowledge.retrieve("ホテルの朝食代も宿泊費に入れていい？")
    found = match(retrieval)
    assert found is not None and "宿泊費" in found.entry.question, "it is most like the 宿泊費 entry"
    assert not found.confident
    answer = learned_sample_kb.knowledge.ask("ホテルの朝食代も宿泊費に入れていい？")
    assert not answer.confident and answer.kind in ("unsure", "outside")


def test_an_unsure_reply_quotes_first_the_entry_clearly_closest_to_the_question(learned_sample_kb: Services) -> None:
    """A near miss about what an entry is about (its breakfast, where the entry says the hotel's cap) is no
    question outside this window: the reply quotes that entry first under 「関係しそうな記載」. A question
    about no entry's topic still gets the outside reply, though some entry is always the least far."""
    question = "ホテルの朝食代も宿泊費に入れていい？"
    found = match(learned_sample_kb.knowledge.retrieve(question))
    assert found is not None and found.closest and not found.confident, found
    answer = learned_sample_kb.knowledge.ask(question)
    assert answer.kind == "unsure" and not answer.confident, answer
    assert answer.excerpts[0].text.startswith("宿泊費はやむを得ない場合に限り"), answer.excerpts
    assert answer.citations[0].source == "expert-dispatch-faq.yaml"
    weather = learned_sample_kb.knowledge.ask("おすすめのラーメン屋は？")
    assert weather.kind == "outside" and not weather.excerpts, weather


STAFF_QUESTION = "事務局の窓口に直接行って相談することはできますか"
STAFF_ANSWER = "事務局での対面相談は予約制です。平日10時〜16時の間で、前日までに電話でご予約ください。"


def test_a_staff_published_entry_answers_a_paraphrase_and_not_a_near_miss(learned_sample_kb: Services) -> None:
    services = learned_sample_kb
    engine = Engine(services)
    with services.db.session() as session:
        create_staff(session, "staff", "担当", "pw-123456789")
    for text in ("担当者と話したい", STAFF_QUESTION):
        engine.handle(InboundMessage(channel="web", external_user_id="asker", text=text))
    with services.db.session() as session:
        ticket = session.execute(select(Ticket).where(Ticket.question == STAFF_QUESTION)).scalar_one()
        member = session.execute(select(StaffAccount).where(StaffAccount.username == "staff")).scalar_one()
        tickets.staff_reply(session, ticket, member, STAFF_ANSWER, via="console")
        candidate = tickets.make_faq_candidate(session, ticket, member).id
    faq_review.publish(services, candidate, "staff")

    def answered(text: str, user: str) -> str:
        """The confident answer the chat gives, with its source ("" for a reply that is no answer: an unsure reply may quote
        the entry among its related excerpts)."""
        reply = Engine(services).handle(InboundMessage(channel="web", external_user_id=user, text=text))[0]
        return reply.text if reply.meta.get("confident") else ""

    assert answered("事務局の窓口に行って直接相談できますか？", "paraphrase").startswith(STAFF_ANSWER)
    for near_miss in ("事務局の住所はどこですか", "事務局で相談するのにお金はかかる？"):
        assert answered(near_miss, near_miss) == ""
