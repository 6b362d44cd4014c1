"""The kind of fact a question asks for, and how the documents write it.

「いくら」 wants an amount in 円, 「いつ」 a date, 「何回」 a count, 「どこ」 an office
or a company. Retrieval uses it to prefer passages that hold such a fact at
all; answering uses it to pick the sentence that does, and a label that
announces it (「日時」「締切日」「提出先」) counts for more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class AnswerType:
    """What kind of fact a question asks for, and how documents write and label it."""

    name: str
    cue: re.Pattern[str]  # in the question
    fact: re.Pattern[str]  # in the answer sentence
    labels: re.Pattern[str]  # a label announcing that fact (「日時」「締切日」「提出先」)
    #: text that looks like the fact but is not (an era year 「令和6年」 is a date, not a duration)
    ignore: re.Pattern[str] | None = None
    #: a question matching the cue but asking something else (「何がもらえますか」 is not yes/no)
    unless: re.Pattern[str] | None = None
    #: what any answer must contain, however well it matches: a quantity needs its number (its `fact`); a
    #: time may be relative (「月に1回以上」「支援後30日以内」「翌月末」)
    must_have: re.Pattern[str] | None = None
    #: the fact marked as the one asked for wherever it stands in the sentence (「…を5月31日までに登録」
    #: is a deadline even after a long lead-in), where `labels` only count at the sentence's head
    marked: re.Pattern[str] | None = None


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


_DATE_PATTERN = r"\d+\s*月\s*\d+\s*日|\d{4}[/-]\d{1,2}[/-]\d{1,2}|令和\s*\d+\s*年\s*\d+\s*月"


def _quantity(name: str, cue: re.Pattern[str], fact: re.Pattern[str], labels: re.Pattern[str],
              ignore: re.Pattern[str] | None = None, unless: re.Pattern[str] | None = None,
              marked: re.Pattern[str] | None = None) -> AnswerType:
    """A question for a quantity (いくら, 何回, 何人): an answer without that quantity cannot be right."""
    return AnswerType(name, cue, fact, labels, ignore=ignore, unless=unless, must_have=fact, marked=marked)


#: A count of months is written six ways: 3か月, 3ヶ月, 3カ月, 3ヵ月, 3ケ月, 3箇月.
_MONTHS = r"(?:か|ヶ|カ|ヵ|ケ|箇)月"
#: A count of places: 3か所, 3ヶ所, 3カ所, 3箇所.
_PLACES = r"(?:か|ヶ|カ|箇)所"
#: Any expression of time an answer to 「いつ」 may give: a date, or a relative time (「月に1回以上」
#: 「支援後30日以内」「翌月末」).
_WHEN = re.compile(_DATE_PATTERN + r"|\d+\s*(?:日|時間|週間|" + _MONTHS + r"|年)\s*(?:以内|前|後|まで|以降)"
                   r"|月に\s*\d+\s*回|毎月|毎週|毎年|翌月|翌日|翌営業日|当日|前日|月末|年度末"
                   # a month without its day: 「中間報告会は10月頃」「3月下旬」
                   r"|\d{1,2}\s*月\s*(?:頃|ごろ|上旬|中旬|下旬|末|以降|中)"
                   # a time set by an event of the program: 「事業終了後の精算払」「契約締結後」「採択後」
                   r"|(?:終了|完了|締結|採択)後")


_COUNT = r"(?:\d+|[一二三四五六七八九十]+)"
#: How often: 「月に1回以上」「一月に一回」「毎週」「2週間に1回」.
_FREQUENCY = re.compile(r"(?:年|月|週|日|\d+\s*(?:" + _MONTHS + r"|週間|日))\s*に\s*" + _COUNT + r"\s*回"
                        r"|毎(?:月|週|日|年)|隔週|" + _COUNT + r"\s*(?:" + _MONTHS + r"|週間)\s*ごと")


_PREFECTURES = (
    "北海道|青森|岩手|宮城|秋田|山形|福島|茨城|栃木|群馬|埼玉|千葉|東京|神奈川|新潟|富山|石川|福井|山梨|長野|岐阜|"
    "静岡|愛知|三重|滋賀|京都|大阪|兵庫|奈良|和歌山|鳥取|島根|岡山|広島|山口|徳島|香川|愛媛|高知|福岡|佐賀|長崎|"
    "熊本|大分|宮崎|鹿児島|沖縄"
)
#: A question word: the question asks for something, so it is not a yes/no question.
_QUESTION_WORD = r"何|どの|どこ|どれ|どう|どんな|いつ|誰|いくら|いくつ|幾つ|なぜ"
#: A date that is part of a law's number (「平成11年5月14日法律第42号」) is not a date anything happens on.
_LAW_NUMBER = re.compile(r"(?:明治|大正|昭和|平成|令和)\s*\d+\s*年\s*\d+\s*月\s*\d+\s*日\s*(?:法律|政令|省令|告示|訓令|条例)")
_URL = re.compile(r"https?://\S+")
#: Who does or gets something: a person or a body (応募者, 経営支援機関, 有識者, 学生, 事務局), not a count of them.
_ACTOR = re.compile(r"[^\s、。]{0,10}(?:者|機関|団体|法人|企業|会社|人材|学生|委員会|事務局|[局庁省])(?![数名])")
# Checked in order: "which tool / how" is asked more specifically than "when" (「どのツールで開催されますか」
# wants the tool), and a tool is a product name (Teams, Zoom), not an acronym like WEB or URL.
ANSWER_TYPES: list[AnswerType] = [
    # 「誰が負担しますか」「どんな人が参加できますか」: asked first, as 「費用は誰が負担」 asks who pays, not how much.
    AnswerType("who", _rx(r"誰|どなた|(?:どんな|どのような|どういう)(?:人|方)"), _ACTOR, _rx(r"対象|負担|主体|担当|参加"),
               must_have=_ACTOR),
    _quantity("amount", _rx(r"いくら|金額|単価|上限額|日額|上限が|予算|費用|何円"), _rx(r"\d[\d,]*\s*(?:万|千)?円"),
              _rx(r"金額|単価|上限|予算|費用|謝金|支給額|規模"),
              # 「作成費用は出ますか」「税理士に払う費用は経費にできますか」 ask whether a cost is covered, not
              # how much it is
              unless=_rx(r"(?:費用|経費)(?:は|も)(?:出|支給|支払|対象|計上)"
                         r"|^(?!.*(?:いくら|何円|金額|上限|単価|予算)).*(?:でき|なり|出|認められ|含まれ)ますか")),
    # 「何回まで」 asks for a cap, which the documents mark as one: 「原則3回まで」「最大3回」.
    _quantity("count", _rx(r"何回|回数"), _rx(r"\d+\s*回"), _rx(r"回数|上限|限度"),
              marked=_rx(r"\d+\s*回まで|最大\s*\d+\s*回|\d+\s*回を(?:上限|限度)")),
    # 「採択件数は？」「何件くらい」: a number of cases (件), which a count of times (回) does not answer.
    _quantity("cases", _rx(r"何件|件数"), _rx(r"\d[\d,]*\s*(?:~\s*\d+\s*)?件"), _rx(r"件数|採択|想定|目標")),
    _quantity("clock", _rx(r"何時(?!間)|時間帯|開いて|受付時間|営業時間"), _rx(r"\d{1,2}\s*(?::\s*\d{2}|時(?!間))"),
              _rx(r"時間|受付|開設|対応|営業|日時|開始")),
    _quantity("years", _rx(r"何年以上|何年|年数"), _rx(r"\d+\s*年"), _rx(r"経験|年数|以上")),
    _quantity("people", _rx(r"何人|人数"), _rx(r"\d+\s*(?:人|名)"), _rx(r"人数|目標|定員|育成")),
    # 「いくつ以上の機関で」「何社」「何者くらい」: a number of things, organisations or places
    _quantity("number", _rx(r"いくつ|幾つ|何社|何者|何機関|何団体|何" + _PLACES + r"|何地域"),
              _rx(r"\d[\d,]*\s*(?:つ|個|社|者|機関|団体|" + _PLACES + r"|地域|以上)"),
              _rx(r"以上|程度|目標|想定|構成")),
    # 「いつまでに」 asks for the deadline: the row labelled 締切日, not the 募集開始日 beside it; and
    # 「事業期間はいつまでですか」 asks for the end date, not a duration.
    # A period written 「契約締結日~令和8年3月31日」 announces its end date, as 「締切日:」 does.
    # 「いつ終わりますか」 asks the same as 「いつまでですか」: the end of a period.
    # A date relative to the month (「翌月10日までに報告」) is a deadline as much as a calendar date.
    AnswerType("deadline", _rx(r"いつまで|いつ(?:終わ|終了|完了)|終了日|締切|締め切|期限|必着"),
               _rx(_DATE_PATTERN + r"|翌月\s*(?:\d+\s*日|末)"),
               _rx(r"締切|締め切|期限|必着|まで|~\s*(?:令和|平成|\d)"),
               ignore=_LAW_NUMBER, must_have=_WHEN,
               # a day to act by, not a month a period runs to (「令和8年3月までの本事業期間中」)
               marked=_rx(r"(?:\d+\s*月|翌月)\s*\d+\s*日[^。、~]{0,16}?(?:まで|必着)")),
    # 「どのくらいの割合」「何%まで」: a share (「半数を超える」「50%以内」「3分の2」), asked before duration
    # as 「どのくらい」 is shared.
    _quantity("share", _rx(r"割合|比率|何\s*%|何パーセント|何割"),
              _rx(r"\d+(?:\.\d+)?\s*(?:%|％|パーセント|割)|半数|過半|\d+\s*分の\s*\d+"), _rx(r"割合|比率|率|以内|超え")),
    # 「どのくらいの頻度で」 asks how often (「一月に一回以上」), not how long: checked before duration.
    AnswerType("frequency", _rx(r"頻度|間隔|何回ずつ"), _FREQUENCY, _rx(r"頻度|毎|定期"), must_have=_FREQUENCY),
    _quantity("duration", _rx(r"どのくらい|どれくらい|期間は|何" + _MONTHS + r"|何時間|何分"),
              _rx(r"\d+\s*(?:" + _MONTHS + r"|週間|日間|年間|時間|分間?(?!の)|年)"), _rx(r"期間|程度|日数|保管|保存"),
              # an era year is a date; 「1時間あたり5,280円」 is a rate, not how long anything lasts
              ignore=_rx(r"(?:令和|平成|昭和)\s*\d+\s*年度?|\d{4}\s*年度?|\d+\s*時間\s*(?:あたり|当たり|につき|ごと)"),
              # 「募集期間はいつからですか」 asks when the period starts, a date
              unless=_rx(r"いつ")),
    # A capitalised word numbered like an item (「Phase01」「Step 2」) is a label, not a product.
    # 「何で構築されていますか」 asks the product a system is built on (Salesforce), as 「どのツール」 does.
    AnswerType("tool", _rx(r"ツール|アプリ|ソフト|何で(?:構築|開発|作られ|作成され|実装)"),
               _rx(r"Teams|Zoom|Webex|Google\s*Meet|Skype|[A-Z][a-z]{2,}(?![a-z]|\s*\d)"),
               _rx(r"ツール|会議|用いて|使用"),
               # a medium (「Web 会議」「Web 入力フォーム」「Email」) is no product
               ignore=_rx(r"Web(?!ex)|E-?mail|Mail|Online")),
    AnswerType("method", _rx(r"方法|手段|どうやって|どうすれば"),
               _rx(r"メール|電話|郵送|FAX|ファクス|フォーム|Web|ウェブ|持参|オンライン|システム"),
               _rx(r"方法|手段")),
    # A date something must be done by (「5月31日17時までに登録」) is a deadline, not when the thing happens.
    AnswerType("date", _rx(r"いつ|何日|日程|日時|開催され"), _WHEN,
               _rx(r"日時|日程|締切|期限|期間|開催日|募集"),
               ignore=re.compile(_LAW_NUMBER.pattern + r"|(?:" + _DATE_PATTERN + r")[^。、~]{0,16}?まで"),
               must_have=_WHEN),
    # A name is introduced as one: 「中小企業119」と称する, 名称は「…」 (a quoted 「委嘱状」 is not a name).
    AnswerType("name", _rx(r"名称|名前"),
               _rx(r"[A-Za-z]{3,}|[「『][^」』]{2,30}[」』]\s*(?:と(?:称|呼|いう|言う))|名称\s*[はを:：]"),
               _rx(r"名称|称する|という")),
    AnswerType("condition", _rx(r"条件|どのような場合|どんな場合|どういう場合|要件|資格"),
               _rx(r"場合|以上|以下|未満|限る|限り|のみ|こと$|ことが"), _rx(r"条件|要件|資格|対象|基準")),
    # 「提出先の住所」 asks for an address: a postcode or a prefecture and its city or ward.
    AnswerType("address", _rx(r"住所|所在地"),
               _rx(r"〒\s*\d{3}-?\d{4}|(?:" + _PREFECTURES + r")[都道府県]?[^\s、。]{1,8}?[市区町村郡]"),
               _rx(r"住所|所在地|提出先|宛先")),
    # 「事務局の会社は？」 asks which company; 「同じ会社が応募できますか」 does not.
    AnswerType("place", _rx(r"どこ|どの(?:都道府県|県|地域|市|エリア)|部署|問い?合わ?せ先|事務局は|担当課|会社(?=は|名)"),
               _rx(r"(?:" + _PREFECTURES + r")[都道府県]?(?:、|・|及び|および)|株式会社|有限会社|法人|研究所|センター|機構|協会|"
                   r"[^\s、。]{2,}(?:課|室|部|局)(?![長面])|在住|国内|フォーム"),
               _rx(r"提出先|問い?合わ?せ先|担当|所在地|宛先|住所|連絡先")),
    # 「修了すると何がもらえますか」: what is given (a certificate, a badge, a payment), which the
    # document writes as issued, granted or paid.
    AnswerType("given", _rx(r"何(?:が|を)(?:もらえ|貰え|受け取れ|いただけ|頂け|支給され|発行され|交付され)"),
               _rx(r"発行|交付|支給|授与|付与|贈呈|配付|配布"), _rx(r"修了|特典|支給")),
    # Last: a yes/no question (no question word) is answered by what the document allows, limits or rules out.
    # Chat writes it plainly: 「出る？」「使える？」「もらえる？」「大丈夫？」.
    AnswerType("yes_no", _rx(r"(?:でき|なり|あり|い|もらえ|使え|出)ますか|だけですか|可能ですか|含まれますか"
                             r"|(?:出る|できる|使える|もらえる|ある|いい|なる|含まれる|大丈夫|OK|可能)\s*[?？]?\s*$"),
               # a rule allows or refuses: 「コンソーシアム形式による申請も認めます」「講師を置かず、…」
               _rx(r"ません|できない|ならない|限る|限り|対象外|不可|除く|可能|できる|含む|含まれ|のみ|認め|[^\s、。]ず[、,]"),
               _rx(r"対象|ただし|なお"),
               unless=_rx(_QUESTION_WORD)),
]

def answer_type(question: str) -> AnswerType | None:
    for kind in ANSWER_TYPES:
        if kind.cue.search(question) and not (kind.unless and kind.unless.search(question)):
            return kind
    return None


#: 「いつ終わりますか」 asks the end of a period the documents write as one (「事業期間:契約締結日~令和8年3月31日」).
_ASKS_END = re.compile(r"いつ(?:終わ|終了)|終わりは|終了日")


def words_to_search(kind: AnswerType | None, question: str) -> list[str]:
    """Words the documents use for what the question asks, though it does not say them."""
    if kind is not None and kind.name == "deadline" and _ASKS_END.search(question):
        return ["期間"]
    return []


def cue_words(kind: AnswerType | None, question: str) -> str:
    """The words of the question that say what kind of answer it wants (方法, 条件, いつまで): they frame
    the question and name no topic of it."""
    if kind is None:
        return ""
    return " ".join(m.group() for m in kind.cue.finditer(question))


def can_answer(kind: AnswerType, answer: str, question_words: list[str]) -> bool:
    """The answer holds what any answer to this kind of question must (「いくら」: an amount in 円), beyond
    the question's own words (「事業終了後」 does not say when 「事業はいつ終わりますか」)."""
    if kind.must_have is None:
        return True
    if kind.must_have is kind.fact:
        return has_fact(kind, answer, question_words)
    return bool(kind.must_have.search(_without_question_words(answer, question_words)))


def _without_question_words(sentence: str, question_words: list[str]) -> str:
    """The sentence with URLs and the question's own words blanked out. A word right after a number is
    its unit (「1~2時間」 answers 「何時間」 though the question says 時間), so it stays."""
    sentence = _URL.sub(" ", sentence)  # a date in a URL's path is not a date anything happens on
    for word in sorted(question_words, key=len, reverse=True):
        sentence = re.sub(r"(?<![\d~])" + re.escape(word), " ", sentence)
    return sentence


def has_fact(kind: AnswerType, sentence: str, question_words: list[str]) -> bool:
    """The asked-for kind of fact is in the sentence, beyond the question's own words (事務局 ≠ a place)."""
    sentence = _without_question_words(sentence, question_words)
    if kind.ignore is not None:
        sentence = kind.ignore.sub(" ", sentence)
    return bool(kind.fact.search(sentence))
