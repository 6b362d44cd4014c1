"""The learned pipeline (MADOGUCHI_KNOWLEDGE__PIPELINE=learned) end to end on the two calls of
tests/test_knowledge_retrieval.py: the answer units its ranker puts first and the answers it gives come
from the shipped model (knowledge/models/); the stages alone are tested in tests/test_knowledge_pipeline.py.
"""

from __future__ import annotations


import pytest

from bot.services import Services
from knowledge.learned import answer_from, rank
from knowledge.model import load_model


def shown(services: Services, question: str, n: int = 3) -> str:
    """The best `n` answer units the learned ranker puts first (what an answer or the quoted excerpts of an
    unsure reply are taken from), one per line."""
    ranked = rank(services.knowledge.retrieve(question), load_model())
    texts: list[str] = []
    for candidate in ranked:
        if candidate.unit.text not in texts:
            texts.append(candidate.unit.text)
    return "\n".join(texts[:n])


def test_short_name_in_question_finds_the_defining_sentence(learned_calls: Services) -> None:
    top = shown(learned_calls, "みどり市地域デジタル推進事業の事務局はどこですか？")
    assert "株式会社サンプル総合研究所" in top, top


def test_long_name_in_question_finds_the_section_written_with_the_short_name(learned_calls: Services) -> None:
    retrieval = learned_calls.knowledge.retrieve("みどり市地域デジタル推進事業の業務統括責任者はどこに住んでいる必要がありますか")
    assert retrieval.alternatives, "the question's 業務統括責任者 is the document's プロジェクトマネージャー"
    top = shown(learned_calls, "みどり市地域デジタル推進事業の業務統括責任者はどこに住んでいる必要がありますか", 5)
    assert "国内に在住" in top, top


@pytest.mark.parametrize(
    ("question", "expected", "source"),
    [
        ("みどり市地域デジタル推進事業の提案書の締切はいつですか？", "6月19日", "midori-dx-call.md"),
        ("あおぞら県観光人材育成事業の締切はいつですか？", "7月31日", "aozora-tourism-call.md"),
    ],
)
def test_a_label_and_value_row_answers_when_and_the_named_call_is_used(
        learned_calls: Services, question: str, expected: str, source: str) -> None:
    retrieval = learned_calls.knowledge.retrieve(question)
    best = rank(retrieval, load_model())[0]
    assert expected in best.unit.text, best.unit.text
    assert best.hit.source.name == source


def test_the_kind_of_fact_asked_for_picks_the_sentence(learned_calls: Services) -> None:
    top = shown(learned_calls, "あおぞら県観光人材育成事業の問い合わせはどの方法で受け付けていますか？")
    assert "電話でお願いします" in top, top


def test_a_compound_said_in_other_words_is_answered_from_the_word_it_stands_for(learned_calls: Services) -> None:
    """「ホテル代」 is 「宿泊費」 (tests/test_knowledge_retrieval.py checks the retrieval side)."""
    retrieval = learned_calls.knowledge.retrieve("ホテル代の上限はいくらですか")
    answer = answer_from(retrieval, learned_calls.settings.knowledge.answer_threshold)
    assert "9,800円" in answer.body, "the answer, or the first excerpt of an unsure reply"


def test_a_longer_heading_phrase_outweighs_a_title_phrase(learned_calls: Services) -> None:
    """デジタル推進 is a phrase of みどり市's title, but デジタル推進協議会 is a heading of the other call."""
    question = "デジタル推進協議会はいくつ以上の団体で構成されますか"
    retrieval = learned_calls.knowledge.retrieve(question)
    assert retrieval.hits[0].source.name == "aozora-tourism-call.md"
    assert "3以上" in shown(learned_calls, question, 1)


def test_a_list_item_is_answered_with_the_sentence_that_introduces_its_list(learned_calls: Services) -> None:
    """「・提案書に虚偽が認められた場合」 alone does not say what happens: 「以下の場合には応募は無効」 does."""
    top = shown(learned_calls, "観光人材育成事業で、提案書に虚偽があったらどうなりますか", 1)
    assert top.startswith("② 以下の場合には応募は無効となります。"), top
    assert "提案書に虚偽が認められた場合" in top
    assert "応募者の負担" not in top, "an item of the outer list is not part of this one"


def test_the_row_of_the_term_asked_about_defines_it(learned_calls: Services) -> None:
    """「b. 消耗品費: …1年未満…」 says what 消耗品 is; the 借料 row only mentions 消耗品 in passing."""
    assert "1年未満" in shown(learned_calls, "観光人材育成事業で消耗品とみなされる物品の条件は？")


def test_a_sentence_that_opens_a_list_comes_with_its_items(learned_calls: Services) -> None:
    """「次の経費は、計上の対象外とします。」 alone does not say which: the items follow it."""
    top = shown(learned_calls, "観光人材育成事業で、計上の対象外になる経費はどんなものがありますか")
    assert "次の経費は、計上の対象外とします。\n・振込に係る手数料\n・税務申告のために税理士に支払う費用" in top, top


def test_a_list_item_is_ruled_on_by_the_sentence_above_it(learned_calls: Services) -> None:
    """「・税務申告のために税理士に支払う費用」 says nothing itself; 「次の経費は、計上の対象外とします。」 does."""
    top = shown(learned_calls, "観光人材育成事業で、税理士に払う費用は経費にできますか", 1)
    assert "計上の対象外" in top and "税理士" in top, top

