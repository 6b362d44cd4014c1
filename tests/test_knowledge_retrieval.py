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
from bot.settings import Settings
from knowledge.aliases import Definition, definitions_in
from knowledge.answering import Candidate, _with_neighbour, answer_from, candidates_for
from knowledge.answer_types import ANSWER_TYPES, AnswerType, answer_type, can_answer, has_fact, words_to_search
from knowledge.inflection import VariantIndex
from knowledge.ingest import ingest_paths
from knowledge.synonyms import SynonymIndex
from knowledge.tokenize import colloquial_topic

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


def _typed(question: str, name: str | None = None) -> AnswerType:
    """The answer type of `question`, which must have one (of kind `name`, when given)."""
    kind = answer_type(question)
    assert kind is not None, question
    assert name is None or kind.name == name, (question, kind.name)
    return kind


@pytest.fixture(scope="module")
def two_calls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    root = tmp_path_factory.mktemp("calls")
    docs = root / "docs"
    docs.mkdir()
    (docs / "midori-dx-call.md").write_text(CALL_A, encoding="utf-8")
    (docs / "aozora-tourism-call.md").write_text(CALL_B, encoding="utf-8")
    services = Services.create(Settings(data_dir=root / "data"))
    ingest_paths(services, [docs])
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
    ("question", "kind"),
    [
        ("謝金には日額の上限がありますか？", "amount"),   # asks for the amount, not yes/no
        ("説明会はいつ開催されますか", "date"),
        ("説明会はどのツールで開催されますか", "tool"),
        ("日当がもらえる条件は？", "condition"),
        ("電話で問い合わせできますか", "yes_no"),
        ("事務局はどこですか", "place"),
        ("管内にはどの県が含まれますか", "place"),    # a question word: not yes/no
        ("修了すると何がもらえますか", "given"),      # 何: not yes/no, but what is issued
        ("応募書類はいつまでに出せばいいですか", "deadline"),
        ("事業はいつ終わりますか", "deadline"),          # the end of a period, as いつまで
        ("募集期間はいつからですか", "date"),             # when a period starts, not how long it is
        ("募集期間はどのくらいですか", "duration"),
        ("今日はいい天気ですね", None),
        ("特急料金が支給されるのはどんな場合ですか", "condition"),  # 支給され alone asks no amount
        ("相談支援は1回あたり何時間くらいですか", "duration"),   # 何時間 is how long, not what time
        ("説明会は何時からですか", "clock"),
        ("採択件数は？", "cases"),
        ("何件くらい採択されますか", "cases"),
        ("謝金はどのくらいの頻度で支払われますか", "frequency"),
        ("提案書の作成費用は出ますか", "yes_no"),          # whether a cost is covered, not how much
        ("同じ会社が複数の地域で応募できますか", "yes_no"),  # 会社 here names no place asked for
        ("事務局の会社名は？", "place"),
        ("講師はいますか", "yes_no"),
        ("協議会はいくつ以上の団体で構成されますか", "number"),
        ("地域ハブ団体は何者くらいですか", "number"),
        ("審査のプレゼンは何分くらいですか", "duration"),
        ("応募するための費用は誰が負担しますか", "who"),     # who pays, not how much
        ("事務処理システムは何で構築されていますか", "tool"),  # the product it is built on
        ("提出先の住所を教えてください", "address"),
        ("ホテル代って出る？", "yes_no"),                   # chat writes yes/no plainly
        ("専門家派遣は何回まで使えますか", "count"),
        ("後継者はどのくらいの割合にする必要がありますか", "share"),  # not how long
        ("税理士に払う費用は経費にできますか", "yes_no"),     # whether a cost is covered, not how much
        ("セミナーは主にどんな人を対象にしていますか", "who"),
    ],
)
def test_answer_types(question: str, kind: str | None) -> None:
    found = answer_type(question)
    assert (found.name if found else None) == kind


def test_dates_in_law_numbers_and_urls_are_not_dates_of_anything() -> None:
    date = next(kind for kind in ANSWER_TYPES if kind.name == "date")
    assert not has_fact(date, "「行政機関の保有する情報の公開に関する法律」(平成11年5月14日法律第42号)に基づき", [])
    assert not has_fact(date, "https://www.example.go.jp/2024/05/29/koubo.html を参照", [])
    assert has_fact(date, "締切日:令和6年6月19日(水)15時必着", [])


def test_an_answer_to_when_or_how_much_must_hold_a_time_or_an_amount() -> None:
    date = _typed("事業はいつ終わりますか")
    amount = _typed("宿泊費はいくらですか")
    # 「事業終了後」 says when something happens after the project, not when the project ends
    assert not can_answer(date, "(6)支払額の確定方法:事業終了後、実績報告書に基づき確定します。", ["事業", "終わる", "終了"])
    assert can_answer(date, "委託金の支払いは、原則として、事業終了後の精算払となります。", ["委託金", "支払う"])
    assert can_answer(date, "事務局は、月に1回以上、謝金を振り込みます。", [])  # relative times answer 「いつ」
    assert not can_answer(amount, "宿泊費は実費相当額を支給する。", ["宿泊費"])
    assert can_answer(amount, "宿泊費は1泊9,800円を上限とする。", ["宿泊費"])


def test_a_unit_after_a_number_is_the_fact_even_when_the_question_says_it() -> None:
    duration = _typed("相談支援は1回あたり何時間くらいですか")
    assert has_fact(duration, "相談回数は1社につき1回1~2時間程度とする。", ["相談", "支援", "時間"])
    assert not has_fact(duration, "相談支援の時間を記録する。", ["相談", "支援", "時間"])


def test_an_hour_count_is_no_clock_time_and_a_deadline_is_no_event_date() -> None:
    clock = _typed("説明会は何時からですか")
    date = _typed("説明会はいつですか")
    assert not has_fact(clock, "URLは説明会開始1時間前までにお送りします。", ["説明会"])
    assert has_fact(clock, "【開催日時】令和7年3月3日(月)13時30分~15時00分", ["説明会"])
    assert not has_fact(date, "連絡先を令和6年5月31日(金)17時00分までに登録してください。", ["説明会"])
    assert has_fact(date, "令和6年6月3日(月)15時00分", ["説明会"])


def test_relative_times_and_marked_deadlines() -> None:
    date = _typed("説明会のURLはいつ届きますか", "date")
    deadline = _typed("実績報告はいつまでに出しますか", "deadline")
    assert has_fact(date, "WEB 会議 URL は説明会開始1時間前までにお送りいたします。", ["説明会", "url"])
    assert has_fact(deadline, "各事業の実績を翌月 10 日までに報告すること。", ["実績", "報告"])
    assert deadline.marked is not None
    # a day to act by, even after a long lead-in, marks the deadline; a month a period runs to does not
    assert deadline.marked.search("以下日時に「Microsoft Teams」を用いて行うので、連絡先を令和6年5月31日(金)17時00分までに登録")
    assert not deadline.marked.search("令和8年3月までの本事業期間中において、採用状況をフォローすること。")


def test_a_rule_that_allows_answers_yes_or_no() -> None:
    yes_no = _typed("コンソーシアムで応募できますか", "yes_no")
    assert has_fact(yes_no, "なお、コンソーシアム形式による申請も認めますが、幹事法人を決めてください。", ["コンソーシアム", "応募"])
    assert not has_fact(yes_no, "幹事法人が事業提案書を提出して下さい。", ["コンソーシアム", "応募"])


def test_how_often_is_answered_by_a_frequency() -> None:
    frequency = _typed("謝金はどのくらいの頻度で支払われますか")
    assert can_answer(frequency, "一月に一回以上の頻度で専門家の口座に謝金を支払う。", ["謝金", "頻度"])
    assert not can_answer(frequency, "謝金は専門家の口座に支払う。", ["謝金", "頻度"])


def test_a_tool_is_a_product_not_a_medium() -> None:
    tool = _typed("説明会はどのツールで行われますか", "tool")
    assert not has_fact(tool, "参加申込された方には Web 会議への接続方法等をご連絡します。", ["説明会"])
    assert not has_fact(tool, "質問用 Web 入力フォームからお送りください。", ["説明会"])
    assert has_fact(tool, "(2)開催方法 Microsoft Teams を予定", ["説明会"])
    assert has_fact(tool, "Webex で開催します。", ["説明会"])


def test_minutes_numbered_labels_and_negative_forms() -> None:
    duration = _typed("審査のプレゼンは何分くらいですか")
    assert has_fact(duration, "プレゼンテーションの時間は、1者当たりおおむね15分程度を想定します。", ["審査"])
    assert not has_fact(duration, "発行済株式の総数の2分の1以上を所有している者", ["審査"])
    assert has_fact(duration, "契約の締結を一定期間(最大36ヵ月)行わない", ["審査"])
    tool = _typed("オンライン開催に使えるツールは何ですか")
    assert not has_fact(tool, "<Phase01>企業間人材マッチングの準備期間", ["オンライン"])
    assert has_fact(tool, "オンライン実施の場合は、Microsoft Teamsまたは Cisco Webex Meetingsを利用してください。", [])
    yes_no = _typed("講師はいますか")
    assert has_fact(yes_no, "講師を置かず、参加者同士が学びあうコミュニティを形成する。", ["講師"])


def test_who_is_answered_by_a_person_or_a_body_and_a_rate_is_no_duration() -> None:
    who = _typed("応募するための費用は誰が負担しますか")
    assert can_answer(who, "本公募への応募に要する費用は、応募者の負担とします。", ["応募", "費用", "負担"])
    assert not can_answer(who, "費用の額は、1時間あたり5,280円とする。", ["応募", "費用", "負担"])
    assert has_fact(who, "主な参加対象者は経営支援機関とする", ["対象"])
    duration = _typed("システムは何時間動いている必要がありますか")
    assert not has_fact(duration, "謝金の額は、1時間あたり5,280円とする。", ["システム"])
    assert has_fact(duration, "計画停止を除き、365日24時間稼働とする。", ["システム"])


def test_when_does_it_end_also_searches_the_period() -> None:
    """「いつ終わりますか」 is answered by 「事業期間:契約締結日~令和8年3月31日」, which says neither word."""
    question = "九州の人材確保支援の事業はいつ終わりますか"
    assert words_to_search(answer_type(question), question) == ["期間"]
    deadline = "応募書類はいつまでに出せばいいですか"
    assert words_to_search(answer_type(deadline), deadline) == []


def test_an_address_is_a_postcode_or_a_prefecture_and_city() -> None:
    address = _typed("提出先の住所を教えてください")
    assert has_fact(address, "■〒102-0093 東京都千代田区平河町 2-7-9", ["提出先"])
    assert not has_fact(address, "【提出先】■株式会社 NTT データ経営研究所", ["提出先"])


def test_prefectures_listed_are_a_place() -> None:
    place = next(kind for kind in ANSWER_TYPES if kind.name == "place")
    assert has_fact(place, "当局管内(福岡県、佐賀県、長崎県、熊本県、大分県、宮崎県、鹿児島県)の中小企業", ["管内"])


def test_short_name_in_question_finds_the_defining_sentence(two_calls: Services) -> None:
    answer = two_calls.knowledge.ask("みどり市地域デジタル推進事業の事務局はどこですか？")
    assert answer.confident, (answer.confidence, answer.features, answer.body)
    assert "株式会社サンプル総合研究所" in answer.body
    assert answer.citations[0].source == "midori-dx-call.md"


def test_long_name_in_question_finds_the_section_written_with_the_short_name(two_calls: Services) -> None:
    retrieval = two_calls.knowledge.retrieve("みどり市地域デジタル推進事業の業務統括責任者はどこに住んでいる必要がありますか")
    assert retrieval.alternatives, "the question's 業務統括責任者 is the document's プロジェクトマネージャー"
    answer = two_calls.knowledge.ask("みどり市地域デジタル推進事業の業務統括責任者はどこに住んでいる必要がありますか")
    assert "国内に在住" in answer.body, answer.body


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
    answer = two_calls.knowledge.ask(question)
    assert answer.confident and "3以上" in answer.body


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
    share = _typed("後継者はどのくらいの割合にする必要がありますか")
    assert has_fact(share, "後継者及び後継者候補の数が半数を超えるように選定すること。", ["後継者"])
    assert has_fact(share, "再委託費の割合が50%を超えないか。", ["割合"])
    when = _typed("中間報告会はいつ頃ですか")
    assert has_fact(when, "※中間報告会は10月頃を想定しています。", ["中間", "報告会"])


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
    count = _typed("専門家派遣は何回まで使えますか")
    assert count.marked is not None and count.marked.search("原則3回までとします")


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
