"""Retrieval and answer choice on a small corpus of two calls written like the real ones.

Covers what the shared corpus taught: a document's own definitions (「…(以下「…」という。)」)
let a question use either name; a question that names a call is answered from that call;
a label-and-value row (「締切日：…」) under its heading answers 「いつ」; the kind of fact
asked for decides between sentences that share the question's words.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.engine import Engine
from bot.messages import InboundMessage
from bot.services import Services
from knowledge.aliases import Definition, definitions_in
from knowledge import kinds
from knowledge.answering import Candidate, _with_neighbour, answer_from, asked, can_answer, candidates_for, states_asked
from knowledge.kinds import KINDS, Kind
from knowledge.inflection import VariantIndex
from knowledge.synonyms import SynonymIndex
from knowledge.tokenize import colloquial_topic
from tests.conftest import ingest_two_calls

CALL_A = """# 令和8年度 みどり市地域デジタル推進事業 公募要領

## 1. はじめに
みどり市は、事業の管理を行う事務局として、株式会社サンプル総合研究所(以下「事務局」という。)を選定しました。
本事業の実施に当たり、事業の進捗を統括する者を業務統括責任者(以下「プロジェクトマネージャー」という。)とします。

## 2. 応募手続き
### (1) 募集期間
募集開始日：令和８年５月１日（金）
締切日：令和８年６月１９日（金）１５時必着
### (2) 提出方法
応募書類は電子メールにより事務局に提出してください。郵送や持参による提出は受け付けません。

## 3. 体制
### a. プロジェクトマネージャーの要件
- 応募者に正社員として所属しており、国内に在住していること。
- 本業務の遂行に必要な時間を確保できること。

## 4. 事務局の役割
事務局は、事業者の支援状況を把握し、必要な助言を行います。
"""

CALL_B = """# 令和8年度 あおぞら県観光人材育成事業 募集要領

## 1. 事業の概要
あおぞら県は、観光業の人材育成を支援します。事務局は県庁観光課に置きます。

## 2. 応募手続き
### (1) 募集期間
締切日：令和８年７月３１日（金）１２時必着
### (2) 問い合わせ
お問い合わせは電話でお願いします。電子メールでのお問い合わせは受け付けません。
### (3) 旅費
研修講師の宿泊費は、1泊9,800円を上限として実費を支給します。

## 3. デジタル推進協議会について
デジタル推進協議会は、県内の3以上の団体で構成します。

## 4. 応募に当たっての注意事項
- ① 応募に要する費用は応募者の負担とします。
- ② 以下の場合には応募は無効となります。
  - ・ 提案書に虚偽が認められた場合
  - ・ 締切に遅れて提出された場合

## 5. 対象となる経費
- a. 借料: 研修に必要な物品のリース・レンタルに要する経費。ただし、消耗品の類は対象外とします。
- b. 消耗品費: 使用可能期間が1年未満の物品の購入に要する経費。

## 6. 研修に参加する事業者
- ・ 県内の事業者が合計10以上参加すること。
- ・ 複数の地域で行う場合は、1地域当たり3以上の事業者が参加すること。

## 7. 計上できない経費
次の経費は、計上の対象外とします。
- ・ 振込に係る手数料
- ・ 税務申告のために税理士に支払う費用
"""


def _kind(name: str) -> Kind:
    return next(kind for kind in KINDS if kind.name == name)


@pytest.fixture(scope="module")
def two_calls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """The two calls answered by the classic answerer: the answers asserted here are its behaviour (the learned
    pipeline, the default, has its twin tests in tests/test_knowledge_learned_answers.py)."""
    services = ingest_two_calls(tmp_path_factory.mktemp("calls"), "classic")
    yield services
    services.close()


def test_definitions_are_read_with_either_quoting_style() -> None:
    text = ("事務局として、株式会社NTTデータ経営研究所(以下、事務局という)を選定する。"
            "実績のある者を業務統括責任者(以下「プロジェクトマネージャー」という。)にすること。"
            "「サンプル技術基準」(以下「SG」と総称する。)に従う。")
    assert definitions_in(text) == [
        Definition(long="株式会社NTTデータ経営研究所", short="事務局"),
        Definition(long="業務統括責任者", short="プロジェクトマネージャー"),
        Definition(long="サンプル技術基準", short="SG"),
    ]


def test_names_inside_each_other_are_not_definitions() -> None:
    """Either name matches the passages of the other already, so they would only add noise."""
    assert definitions_in("情報管理責任者(以下「情報管理責任者等」という。)") == []
    assert definitions_in("外部公開ウェブサイト(以下「ウェブサイト」という。)") == []


@pytest.mark.parametrize(
    ("question", "wanted"),
    [
        ("宿泊費の上限はいくらですか", {"amount"}),
        ("提案書はいつまでに出せばいいですか", {"date"}),
        ("専門家派遣は何回まで使えますか", {"count"}),
        ("事務局はどこですか", {"where"}),
        ("申込方法を教えてください", {"how"}),
        ("電話で問い合わせできますか", {"yes_no"}),
        ("どこで問い合わせできますか", {"where"}),  # a question word: not yes/no
        ("ホテル代って出る？", {"amount", "yes_no"}),  # chat writes yes/no plainly
        ("いつまでにいくら払えばいいですか", {"amount", "date"}),  # several kinds at once
        ("今日はいい天気ですね", set()),
    ],
)
def test_the_kinds_a_question_asks_for(question: str, wanted: set[str]) -> None:
    assert {kind.name for kind in asked(colloquial_topic(question))} == wanted


def test_dates_in_law_numbers_and_urls_are_not_dates_of_anything() -> None:
    date = _kind("date")
    assert not kinds.states(date, "「行政機関の保有する情報の公開に関する法律」(平成11年5月14日法律第42号)に基づき")
    assert not kinds.states(date, "https://www.example.go.jp/2024/05/29/koubo.html を参照")
    assert kinds.states(date, "締切日:令和6年6月19日(水)15時必着")


def test_an_answer_to_how_much_or_when_must_state_a_value() -> None:
    """A value asked for (an amount, a time) must be in the answer; who or how may be answered without one."""
    how_much, when = asked("宿泊費はいくらですか"), asked("謝金はいつ振り込まれますか")
    assert not can_answer(how_much, "宿泊費は実費相当額を支給する。", ["宿泊費"])
    assert can_answer(how_much, "宿泊費は1泊9,800円を上限とする。", ["宿泊費"])
    assert can_answer(when, "事務局は、月末までに謝金を振り込みます。", ["謝金"])  # a relative time answers 「いつ」
    assert not can_answer(when, "事務局は専門家の口座に謝金を振り込みます。", ["謝金"])
    who_pays = asked("応募するための費用は誰が負担しますか")
    assert not kinds.must_state(who_pays)
    assert can_answer(who_pays, "本公募への応募に要する費用は、応募者の負担とします。", ["応募", "費用", "負担"])


def test_the_question_s_own_words_are_no_fact_but_a_unit_after_a_number_is() -> None:
    period, where = _kind("period"), _kind("where")
    assert kinds.states(period, "相談は1回1~2時間程度とする。", ["相談", "時間"])
    assert not kinds.states(period, "相談支援の時間を記録する。", ["相談", "時間"])
    assert not kinds.states(where, "事務局は支援状況を把握します。", ["事務局"])


def test_a_label_is_written_with_the_words_people_ask_with() -> None:
    assert kinds.labelled(_kind("date"), "締切日：令和８年６月１９日")
    assert kinds.labelled(_kind("where"), "(3) 提出先")
    assert kinds.labelled(_kind("how"), "(2) 提出方法")
    assert not kinds.labelled(_kind("date"), "1. 事業の概要")


def test_a_rule_that_allows_answers_yes_or_no() -> None:
    wanted = asked("コンソーシアムで応募できますか")
    assert states_asked(wanted, "なお、コンソーシアム形式による申請も認めますが、幹事法人を決めてください。", ["コンソーシアム"])
    assert not states_asked(wanted, "幹事法人が事業提案書を提出して下さい。", ["コンソーシアム"])


def test_how_often_is_answered_by_a_frequency() -> None:
    wanted = asked("謝金はどのくらいの頻度で支払われますか")
    assert "frequency" in {kind.name for kind in wanted}
    assert states_asked(wanted, "一月に一回以上の頻度で専門家の口座に謝金を支払う。", ["謝金", "頻度"])
    assert not kinds.states(_kind("frequency"), "謝金は専門家の口座に支払う。", ["謝金", "頻度"])


def test_short_name_in_question_finds_the_defining_sentence(two_calls: Services) -> None:
    answer = two_calls.knowledge.ask("みどり市地域デジタル推進事業の事務局はどこですか？")
    assert answer.confident, (answer.confidence, answer.features, answer.body)
    assert "株式会社サンプル総合研究所" in answer.body
    assert answer.citations[0].source == "midori-dx-call.md"


def test_long_name_in_question_finds_the_section_written_with_the_short_name(two_calls: Services) -> None:
    retrieval = two_calls.knowledge.retrieve("みどり市地域デジタル推進事業の業務統括責任者はどこに住んでいる必要がありますか")
    assert retrieval.alternatives, "the question's 業務統括責任者 is the document's プロジェクトマネージャー"
    assert any("国内に在住" in hit.chunk.text for hit in retrieval.hits[:2]), [h.chunk.text[:40] for h in retrieval.hits]


@pytest.mark.parametrize(
    ("question", "expected", "source"),
    [
        ("みどり市地域デジタル推進事業の提案書の締切はいつですか？", "6月19日", "midori-dx-call.md"),
        ("あおぞら県観光人材育成事業の締切はいつですか？", "7月31日", "aozora-tourism-call.md"),
    ],
)
def test_a_label_and_value_row_answers_when_and_the_named_call_is_used(
        two_calls: Services, question: str, expected: str, source: str) -> None:
    answer = two_calls.knowledge.ask(question)
    assert expected in answer.body, (answer.body, answer.features)
    assert answer.citations[0].source == source


def test_the_kind_of_fact_asked_for_picks_the_sentence(two_calls: Services) -> None:
    answer = two_calls.knowledge.ask("あおぞら県観光人材育成事業の問い合わせはどの方法で受け付けていますか？")
    assert "電話でお願いします" in answer.body, answer.body
    assert answer.citations[0].source == "aozora-tourism-call.md"


def test_a_word_the_calls_never_use_is_matched_by_its_sudachi_synonym(two_calls: Services) -> None:
    """「住んでいる」 meets 「在住」 (one synonym group in sudachidict-core), and is not counted as a word
    the manuals do not know."""
    retrieval = two_calls.knowledge.retrieve("プロジェクトマネージャーはどこに住んでいる必要がありますか")
    assert "在住" in retrieval.synonyms["住む"]
    assert retrieval.covered("住む", {"在住"})
    assert retrieval.unknown_share < 0.5


def test_a_compound_said_in_other_words_stands_for_its_parts(two_calls: Services) -> None:
    """「ホテル代」 is 「宿泊費」 (one synonym group): its part ホテル is then no word the calls lack, and
    代 alone must not match every passage about fees."""
    retrieval = two_calls.knowledge.retrieve("ホテル代の上限はいくらですか")
    assert retrieval.synonyms["ホテル代"] == {"宿泊費"}
    assert "ホテル" not in retrieval.query_tokens and "代" not in retrieval.query_tokens
    assert retrieval.unknown_share < 0.5
    # as telling as the word it stands for, not as rare as a word never seen
    assert retrieval.idf["ホテル代"] == pytest.approx(two_calls.knowledge.refresh().idf("宿泊費"))
    assert retrieval.idf["ホテル代"] < two_calls.knowledge.refresh().idf("ホテル代")
    answer = answer_from(retrieval, two_calls.settings.knowledge.answer_threshold)
    assert answer.confident and "9,800円" in answer.body


def test_a_question_quoting_a_title_is_steered_to_that_document(two_calls: Services) -> None:
    """Title words one by one are in every call; a run of the title's own characters names one call."""
    retrieval = two_calls.knowledge.retrieve("観光人材育成の締切はいつですか？")
    assert retrieval.steered_source is not None
    assert retrieval.hits[0].source.name == "aozora-tourism-call.md"
    assert "7月31日" in two_calls.knowledge.ask("観光人材育成の締切はいつですか？").body


def test_a_longer_heading_phrase_outweighs_a_title_phrase(two_calls: Services) -> None:
    """デジタル推進 is a phrase of みどり市's title, but デジタル推進協議会 is a heading of the other call."""
    question = "デジタル推進協議会はいくつ以上の団体で構成されますか"
    retrieval = two_calls.knowledge.retrieve(question)
    assert retrieval.hits[0].source.name == "aozora-tourism-call.md"
    assert "3以上の団体" in retrieval.hits[0].chunk.text


def test_a_run_of_nouns_the_calls_never_write_together_is_half_unknown(two_calls: Services) -> None:
    """IT, 導入, 補助 are ordinary words; 「IT導入補助金」 is a program the calls do not cover."""
    known = two_calls.knowledge.retrieve("みどり市の事業の事務局はどこですか")
    unseen = two_calls.knowledge.retrieve("みどり市のIT導入補助金の補助率はどこで確認できますか")
    assert unseen.unknown_share > known.unknown_share + 0.2
    assert not two_calls.knowledge.ask("IT導入補助金の補助率は？").confident


def test_a_list_item_is_answered_with_the_sentence_that_introduces_its_list(two_calls: Services) -> None:
    """「・提案書に虚偽が認められた場合」 alone does not say what happens: 「以下の場合には応募は無効」 does."""
    answer = two_calls.knowledge.ask("観光人材育成事業で、提案書に虚偽があったらどうなりますか")
    assert answer.confident
    assert answer.body.startswith("② 以下の場合には応募は無効となります。")
    assert "・提案書に虚偽が認められた場合" in answer.body and "・締切に遅れて提出された場合" in answer.body
    assert "応募者の負担" not in answer.body, "an item of the outer list is not part of this one"


def test_the_row_of_the_term_asked_about_defines_it(two_calls: Services) -> None:
    """「b. 消耗品費: …1年未満…」 says what 消耗品 is; the 借料 row only mentions 消耗品 in passing."""
    answer = two_calls.knowledge.ask("観光人材育成事業で消耗品とみなされる物品の条件は？")
    assert answer.confident and "1年未満" in answer.body


def test_a_question_that_names_no_program_is_answered_with_which_program(two_calls: Services) -> None:
    """Both calls have a 締切日: 「締切はいつですか」 gets each call's own answer and the question which one;
    naming the call gets the answer."""
    answer = two_calls.knowledge.ask("締切はいつですか")
    assert answer.kind == "ambiguous" and not answer.confident
    assert {c.program for c in answer.citations} == {"みどり市地域デジタル推進事業", "あおぞら県観光人材育成事業"}
    assert "6月19日" in answer.body and "7月31日" in answer.body
    reply = Engine(two_calls).handle(InboundMessage(channel="cli", external_user_id="u", text="締切はいつですか"))
    assert reply[0].text.startswith("事業によってお答えが異なります。どの事業についてのご質問でしょうか。")
    assert "・みどり市地域デジタル推進事業：締切日:令和8年6月19日" in reply[0].text
    # The calls that differ are documents, not the installation's programs: no program's button on LINE.
    on_line = Engine(two_calls).handle(InboundMessage(channel="line", external_user_id="u2", text="締切はいつですか"))
    assert [o.value for o in on_line[0].options] == ["contact:human"], on_line[0].options
    named = two_calls.knowledge.ask("観光人材育成事業の締切はいつですか")
    assert named.confident and "7月31日" in named.body


def test_a_sentence_that_opens_a_list_comes_with_its_items(two_calls: Services) -> None:
    """「次の経費は、計上の対象外とします。」 alone does not say which: the items follow it."""
    answer = two_calls.knowledge.ask("観光人材育成事業で、計上の対象外になる経費はどんなものがありますか")
    assert answer.body.startswith("次の経費は、計上の対象外とします。")
    assert "・振込に係る手数料" in answer.body and "・税務申告のために税理士に支払う費用" in answer.body


def test_a_list_too_long_to_show_is_not_shown_as_its_opening_sentence_twice() -> None:
    """An opening sentence whose list does not fit in an answer is shown with its neighbour, not repeated
    as the list's only item."""
    opener = "次の書類を提出すること。"
    sentences = [opener, "・" + "あ" * 150, "・" + "い" * 150]
    best = Candidate(hit_no=0, sentence_no=0, hit=None, features={}, score=1.0)  # type: ignore[arg-type]
    answer = _with_neighbour(sentences, best, [best])
    assert answer.count(opener) == 1 and "・" + opener not in answer


def test_a_list_item_is_ruled_on_by_the_sentence_above_it(two_calls: Services) -> None:
    """「・税務申告のために税理士に支払う費用」 says nothing itself; 「次の経費は、計上の対象外とします。」 does."""
    answer = two_calls.knowledge.ask("観光人材育成事業で、税理士に払う費用は経費にできますか")
    assert answer.confident
    assert "計上の対象外" in answer.body and "税理士" in answer.body


def test_a_share_and_a_month_without_its_day_are_facts() -> None:
    share = asked("後継者はどのくらいの割合にする必要がありますか")
    assert states_asked(share, "後継者及び後継者候補の数が半数を超えるように選定すること。", ["後継者"])
    assert states_asked(share, "再委託費の割合が50%を超えないか。", ["割合"])
    assert states_asked(asked("中間報告会はいつ頃ですか"), "※中間報告会は10月頃を想定しています。", ["中間", "報告会"])


def test_a_count_per_unit_is_answered_per_that_unit(two_calls: Services) -> None:
    """「1つの地域で何社以上」 asks per region: 「1地域当たり3以上」, not the total 「合計10以上」."""
    candidates, sentences = candidates_for(two_calls.knowledge.retrieve("観光人材育成事業では、1つの地域で何社以上の事業者が参加しますか"))
    best = max(candidates, key=lambda c: c.score)
    assert "1地域当たり3以上" in sentences[best.hit_no][best.sentence_no]
    assert best.features["per_unit"] == 1.0


def test_a_verb_the_calls_never_use_is_only_half_unknown(two_calls: Services) -> None:
    """納める (the calls write 提出) says how the question is put; a noun they never use names a topic."""
    verb = two_calls.knowledge.retrieve("みどり市の応募書類はどこに納めますか")
    noun = two_calls.knowledge.retrieve("みどり市の温泉はどこですか")
    assert "納める" in verb.idf and "温泉" in noun.idf
    verb_share = verb.idf["納める"] / sum(verb.idf.values())
    assert verb.unknown_share == pytest.approx(0.5 * verb_share, abs=0.05)
    assert noun.unknown_share > 0.3


def test_the_chat_topic_marker_tte_after_a_noun_is_read_as_wa() -> None:
    """Sudachi reads 「ホテル代って」 as the verb 代わる; 「払って」「使って」 are verbs and stay."""
    assert colloquial_topic("ホテル代って出る？") == "ホテル代は出る?"
    for question in ("自分で払って後で精算できますか", "マイカー使ってもいい？", "説明会って何時から？"):
        assert colloquial_topic(question) == question


def test_verb_and_noun_forms_of_one_word_meet() -> None:
    index = VariantIndex(["申し込み", "支払い", "問い合わせ", "使用"])
    assert index.variants("申し込む") == {"申し込み"}
    assert index.variants("支払う") == {"支払い"}
    assert index.variants("問い合わせる") == {"問い合わせ"}
    assert index.variants("使う") == set(), "a one-kanji stem is too short to be one word"


def test_synonym_groups_come_from_the_dictionary() -> None:
    index = SynonymIndex(["宿泊費", "在住", "終了", "謝金"])
    assert index.synonyms("ホテル代") == {"宿泊費"}
    assert index.synonyms("終わる") == {"終了"}
    assert index.synonyms("謝金") == set(), "a word is not its own synonym"
