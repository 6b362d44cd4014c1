"""The kinds of fact a question can ask for, as one small general table.

Each row says how people ask for a kind of fact (the question's cue) and how documents write it (the
fact). Nothing here decides an answer: the question's kinds and the unit's facts become features of the
learned ranker and gate (knowledge/features.py), which weigh them from the labeled bank. A question may
ask for several kinds at once (「いつまでにいくら」), so every row is checked, in no order.

Rules of the table: a cue is a question word or a word naming the kind of fact (いつ, いくら, 方法);
a fact is the written shape of that kind (a date, an amount in 円). No cue names a topic of any one
document, and no row exists for one question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The small ka of 「3か月」「何ヶ所」 in its written forms.
_SMALL_KA = ("か", "ヶ", "カ", "ヵ", "ケ", "箇")
_MONTHS = "(?:" + "|".join(_SMALL_KA) + ")月"
#: Japanese counters (助数詞), one small general table, and the kind of fact a number of each is: 「何泊」
#: 「何人」 ask a count, 「何時間」 a period, and 「3回」 states a count. The kinds' cues and facts below are
#: read from it, and so is the FAQ stage's check that an answer states a number of the unit asked
#: (knowledge/faq_match.py). 「何度」 is left out: 「何度も」 says "again and again", no count asked.
COUNTERS: dict[str, str] = {
    **dict.fromkeys(("回", "件", "人", "名", "社", "個", "泊", "枚", "部", "歳", "団体",
                     *(k + "所" for k in _SMALL_KA)), "count"),
    **dict.fromkeys(("時間", "分", "週間", "日間", "年", *(k + "月" for k in _SMALL_KA)), "period"),
    "日": "date", "km": "distance", "キロ": "distance",
}


def counter_pattern(kind: str | None = None) -> str:
    """The counters of the table (of one kind, or all), longest first, as a regular expression group."""
    names = [c for c, k in COUNTERS.items() if kind is None or k == kind]
    return "(" + "|".join(re.escape(c) for c in sorted(names, key=len, reverse=True)) + ")"


#: A question word asking a number: 何 or なん (「なん回」 in chat).
ASKS_NUMBER = r"(?:何|なん)\s*"
_DATE = (r"\d+\s*月\s*\d+\s*日|\d{4}[/-]\d{1,2}[/-]\d{1,2}|(?:令和|平成)\s*[\d元]+\s*年\s*\d+\s*月"
         r"|\d{1,2}\s*月\s*(?:頃|ごろ|上旬|中旬|下旬|末)")
_RELATIVE = (r"\d+\s*(?:日|時間|週間|" + _MONTHS + r"|年)\s*(?:以内|前|後|まで|以降)"
             r"|翌月|翌日|翌営業日|当日|前日|月末|年度末|(?:終了|完了|締結|採択)後")
#: Who does or gets something: a person or a body.
_ACTOR = r"[^\s、。]{0,10}(?:者|機関|団体|法人|企業|会社|事業者|委員会|事務局|[局庁省])(?![数名])"
_PREFECTURE = r"(?:北海道|東京都|大阪府|京都府|\S{1,3}県)"
#: A question word: a question that has one asks for something, so it is not a yes/no question.
_QUESTION_WORD = re.compile(r"何|どの|どこ|どれ|どう|どんな|いつ|誰|いくら|いくつ|幾つ|なぜ|どちら")
#: A date that is part of a law's number (「平成11年5月14日法律第42号」) is no date anything happens on.
_LAW_NUMBER = re.compile(r"(?:明治|大正|昭和|平成|令和)\s*\d+\s*年\s*\d+\s*月\s*\d+\s*日\s*(?:法律|政令|省令|告示|訓令|条例)")
_URL = re.compile(r"https?://\S+")


@dataclass(frozen=True)
class Kind:
    name: str
    cue: re.Pattern[str]  # in the question
    fact: re.Pattern[str]  # in a unit of a document
    #: the fact is a value (a number, a date, a time): an answer without one cannot say how much or when,
    #: however well it matches the question's words. The other kinds' facts are loose shapes (者, 場合, のみ)
    #: that a right answer may lack.
    value: bool = False


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


KINDS: tuple[Kind, ...] = (
    Kind("amount", _rx(r"いくら|金額|費用|単価|上限額|予算|何円|額は|代は|代って|もらえる額"),
         _rx(r"\d[\d,]*\s*(?:万|千|億)?円"), value=True),
    Kind("date", _rx(r"いつ|何日|何月|日程|日時|締切|締め切|しめきり|期限|まで(?:に|です|\?|？)"),
         _rx(_DATE + "|" + _RELATIVE), value=True),
    Kind("period", _rx(r"期間|どのくらい|どれくらい|" + ASKS_NUMBER + counter_pattern("period")),
         _rx(r"\d+\s*(?:" + _MONTHS + r"|週間|日間|年間|時間|分間?|年)|~|〜|から.{1,20}まで"), value=True),
    Kind("count", _rx(ASKS_NUMBER + counter_pattern("count") + r"|いくつ|幾つ|何者|件数|人数|回数"),
         _rx(r"\d[\d,]*\s*(?:" + counter_pattern("count") + r"|者|つ|機関|地域)"), value=True),
    Kind("frequency", _rx(r"頻度|間隔|何回ずつ|どのくらいおき|ペース"),
         _rx(r"(?:年|月|週|日|\d+\s*(?:" + _MONTHS + r"|週間|日))\s*に\s*(?:\d+|[一二三四五])\s*回|毎(?:月|週|日|年)|隔週"
             r"|(?:\d+|[一二三])\s*(?:" + _MONTHS + r"|週間)\s*ごと"), value=True),
    Kind("share", _rx(r"割合|何%|何％|何割|比率|率は|パーセント"),
         _rx(r"\d+(?:\.\d+)?\s*(?:%|％|パーセント|割)|半数|過半|\d+\s*分の\s*\d+"), value=True),
    Kind("clock", _rx(r"何時(?!間)|時間帯|受付時間|営業時間|開いて"),
         _rx(r"\d{1,2}\s*(?::\s*\d{2}|時(?!間))"), value=True),
    Kind("who", _rx(r"誰|だれ|どなた|(?:どんな|どのような|どういう)(?:人|方|企業|会社|事業者)|対象者|主体"),
         _rx(_ACTOR)),
    Kind("where", _rx(r"どこ|住所|所在地|宛先|提出先|問い?合わ?せ先|窓口|連絡先"),
         _rx(r"〒\s*\d{3}|" + _PREFECTURE + r"|市|区|株式会社|センター|[^\s、。]{2,}(?:課|室|部|局)(?![長面])|@|メール|電話")),
    Kind("how", _rx(r"方法|どうやって|どうすれば|どうしたら|手続|手順|やり方|仕方|流れ"),
         _rx(r"メール|郵送|電子|システム|フォーム|提出|申請|持参|オンライン|Web|ウェブ|により|を通じて")),
    # the name of a thing: a product or tool (Teams, Salesforce), a system, a form, written in Latin
    # letters or quoted
    Kind("name", _rx(r"ツール|アプリ|ソフト|システム|名前|名称|何という|なんという|何て"),
         _rx(r"[A-Z][A-Za-z]{2,}|[「『][^」』]{2,30}[」』]")),
    Kind("condition", _rx(r"条件|要件|資格|どんな場合|どのような場合|どういう場合|対象(?:に|と|は)"),
         _rx(r"場合|以上|以下|未満|限る|限り|のみ|こと[。$]|満たす")),
    Kind("list", _rx(r"何が必要|必要な(?:もの|書類)|書類|何を|どんな(?:もの|こと)|どのような(?:もの|こと)|一覧|種類|内容"),
         _rx(r"^・|\n・|、.+、")),
    Kind("yes_no", _rx(r"(?:でき|なり|あり|い|もらえ|使え|出|れ)ますか|だけですか|可能ですか|含まれますか|大丈夫"
                       r"|(?:出る|できる|使える|もらえる|ある|いい|なる|含まれる|OK|可能|いける|だめ|ダメ)\s*[?？]?\s*$"),
         _rx(r"ません|できない|ならない|限る|限り|対象外|対象と(?:し|な)|不可|除く|可能|できる|できます|含む|含まれ|のみ|認め")),
)

KIND_NAMES = tuple(kind.name for kind in KINDS)


def asked(question: str) -> dict[str, bool]:
    """Which kinds of fact the question asks for (several may; none for a topic-only question)."""
    has_question_word = bool(_QUESTION_WORD.search(question))
    out = {}
    for kind in KINDS:
        hit = bool(kind.cue.search(question))
        if kind.name == "yes_no":
            hit = hit and not has_question_word
        out[kind.name] = hit
    return out


def primary(question: str) -> Kind | None:
    """The first kind the question asks for, in table order (only used to weight retrieval a little)."""
    flags = asked(question)
    return next((kind for kind in KINDS if flags[kind.name]), None)


def asked_kinds(question: str) -> tuple[Kind, ...]:
    """The rows of the kinds the question asks for, in table order."""
    flags = asked(question)
    return tuple(kind for kind in KINDS if flags[kind.name])


def states(kind: Kind, text: str, question_words: list[str] = ()) -> bool:  # type: ignore[assignment]
    """`text` states a fact of this kind, beyond the question's own words (事務局 is no answer to
    「事務局はどこ」)."""
    return bool(kind.fact.search(without_question_words(text, list(question_words))))


def labelled(kind: Kind, label: str) -> bool:
    """A label or heading announces a fact of this kind: documents label a fact (「締切日」「金額」「提出先」
    「申込方法」) with the words people ask for it with, so the question's cue is the label's test too."""
    return bool(kind.cue.search(label))


def must_state(wanted: tuple[Kind, ...]) -> bool:
    """An answer must state one of the asked-for facts: only when every kind asked for is a value (an
    amount, a date, a count); a question that also asks who or how may be answered without a number."""
    return bool(wanted) and all(kind.value for kind in wanted)


def cue_words(question: str) -> str:
    """The words of the question that only say what kind of answer it wants (方法, 条件, いつまで): they
    frame the question and name no topic of it."""
    return " ".join(m.group() for kind in KINDS for m in kind.cue.finditer(question))


def without_question_words(text: str, question_words: list[str]) -> str:
    """`text` with URLs, law numbers and the question's own words blanked out: 事務局 is no answer to
    「事務局はどこ」. A word right after a number is its unit (「1~2時間」 answers 「何時間」), so it stays."""
    text = _LAW_NUMBER.sub(" ", _URL.sub(" ", text))
    for word in sorted(question_words, key=len, reverse=True):
        text = re.sub(r"(?<![\d~])" + re.escape(word), " ", text)
    return text


def facts(text: str, question_words: list[str] = ()) -> dict[str, bool]:  # type: ignore[assignment]
    """Which kinds of fact `text` states, beyond the question's own words."""
    cleaned = without_question_words(text, list(question_words))
    return {kind.name: bool(kind.fact.search(cleaned)) for kind in KINDS}


def fact_strings(text: str, names: list[str]) -> set[str]:
    """The facts of the given kinds a text states, compacted (「6月19日」「5,280円」), to tell two units that
    state different facts from two that state the same one."""
    out: set[str] = set()
    for kind in KINDS:
        if kind.name in names and kind.name not in ("list", "yes_no", "how", "condition"):
            out |= {re.sub(r"[\s,]", "", m.group()) for m in kind.fact.finditer(text)}
    return out


#: A rate: an amount per one of a unit of the counter table. People ask it by the unit (「1時間いくら」「キロ
#: いくら」), by its name (時給, 単価) or both; documents state it as 「1時間あたり5,280円」「1泊9,800円」. Kept
#: beside the kinds rather than in them, since the unit ranker's features are one per kind of the table: the
#: FAQ stage reads it (knowledge/faq_match.py), to tell 「謝金の時間単価は？」 (answered by 「1時間あたり5,280円」)
#: from a question about the same fee that asks no rate.
_ONE = r"(?:1|１|一)\s*"
_RATE_CUE = re.compile(r"時給|日給|日額|単価|(?:" + _ONE + ")?" + counter_pattern()
                       + r"\s*(?:あたり|当たり|につき)?\s*(?:いくら|何円|なん円)")
_RATE_FACT = re.compile(_ONE + counter_pattern() + r"\s*(?:あたり|当たり|につき|[^\d。、]{0,3}[0-9０-９][0-9０-９,，]*\s*(?:万|千)?円)"
                        r"|時給|日額")


def asks_rate(question: str) -> bool:
    """The question asks an amount per unit (「1時間いくら」「時給」「単価」)."""
    return bool(_RATE_CUE.search(question))


def states_rate(text: str) -> bool:
    """The text states an amount per one unit (「1時間あたり」「1泊9,800円」「1kmあたり37円」)."""
    return bool(_RATE_FACT.search(text))

