"""The FAQ question-matching stage (knowledge/faq_match.py): a FAQ entry, curated or staff-published,
answers a question asked in other words, and a near miss about something the entry does not say is left to
the unsure or outside replies. The entries' question vectors are e5 query vectors kept by content hash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sqlalchemy import select

from bot.engine import Engine
from bot.messages import InboundMessage
from bot.services import Services
from bot.settings import Settings
from handlers.escalation import tickets
from handlers.escalation.models import StaffAccount, Ticket
from handlers.escalation.staff import create as create_staff
from knowledge import faq_review
from knowledge.embeddings import build_embeddings
from knowledge.faq_match import (FAQ_MATCH_FEATURES, GATE_FEATURES, LONE_MARGIN, FaqModel, entries, load_model,
                                 match, pair_features, question_vectors, save_model)
from knowledge.ingest import ingest_paths
from knowledge.model import Gate
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
    answer = learned_sample_kb.knowledge.ask("チェックアウトの時に企業は何をしますか")
    assert answer.confident and answer.kind == "faq", answer
    assert "確認（サイン）" in answer.text
    assert [c.source for c in answer.citations] == ["expert-dispatch-faq.yaml"], "cited to its FAQ alone"
    assert "faq_q_dense" in answer.features, "the FAQ stage answered"
    hotel = learned_sample_kb.knowledge.ask("ホテル代って出る？")  # what `make chat` is first asked
    assert hotel.confident and "9,800円" in hotel.text and hotel.citations[0].source == "expert-dispatch-faq.yaml"


def test_a_near_miss_is_not_answered_with_the_entry_it_resembles(learned_sample_kb: Services) -> None:
    retrieval = learned_sample_kb.knowledge.retrieve("ホテルの朝食代も宿泊費に入れていい？")
    found = match(retrieval)
    assert found is not None and "宿泊費" in found.entry.question, "it is most like the 宿泊費 entry"
    assert not found.confident
    answer = learned_sample_kb.knowledge.ask("ホテルの朝食代も宿泊費に入れていい？")
    assert not answer.confident and answer.kind in ("unsure", "outside")


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

    assert answered("事務局って行ったら相談乗ってもらえる？", "paraphrase").startswith(STAFF_ANSWER)
    for near_miss in ("事務局の住所はどこですか", "事務局で相談するのにお金はかかる？"):
        assert answered(near_miss, near_miss) == ""
