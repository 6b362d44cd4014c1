"""Turn what a person typed into the value stored for a question, or say what was expected.

People answer in chat the way they speak: 「約50人」, 「５０名くらい」, 「３」
for the third choice, 「令和8年4月1日」, 「〒100-0001」. Every parser here
takes normalized text (NFKC, so full-width digits are already ASCII) and
returns a plain JSON value, or raises `AnswerError` whose key and values
become a polite re-ask that says what is expected.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email

from handlers.hearing.schema import Question
from bot.text import normalize


class AnswerError(ValueError):
    """The text is not a valid answer; `key` is an i18n key for the re-ask."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


YES_WORDS = frozenset({"はい", "ハイ", "yes", "y", "ある", "あります", "あり", "有", "有り", "可", "可能", "できる",
                       "できます", "出来る", "出来ます", "同意", "同意する", "同意します", "ok", "○", "◯", "はいです",
                       "そうです", "うん", "大丈夫", "大丈夫です", "問題ない", "問題ありません"})
NO_WORDS = frozenset({"いいえ", "イイエ", "no", "n", "ない", "ありません", "なし", "無", "無し", "不可", "できない",
                      "できません", "出来ない", "出来ません", "同意しない", "同意しません", "×", "✕", "いえ",
                      "いいえです", "ちがう", "違う", "だめ", "ダメ", "難しい", "難しいです"})

_APPROX = re.compile(r"^(約|およそ|おおよそ|大体|だいたい|ほぼ|概ね|おおむね)")
_APPROX_TAIL = re.compile(r"(程度|くらい|ぐらい|位|前後|ほど|強|弱|ちょっと|余り|あまり)$")
_KANJI_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_KANJI_UNITS = {"十": 10, "百": 100, "千": 1000}
_CHOICE_SPLIT = re.compile(r"\s*[,、，・/／;；]\s*|\s+")
_ORDINAL = re.compile(r"^(\d{1,2})(番|番目|つ目)?(です)?$")


def parse_answer(question: Question, text: str, today: date | None = None) -> Any:
    """The stored value for `text` as an answer to `question`."""
    text = normalize(text)
    if not text:
        raise AnswerError("hearing_expect_nonempty")
    parser = _PARSERS[question.type]
    return parser(question, text, today or date.today())


# ----------------------------------------------------------------- numbers
def parse_japanese_number(text: str) -> int | None:
    """「50」「1,200」「五十」「1万2千」「1.5万」 -> int; None when it is not one number."""
    text = text.replace(",", "").replace(" ", "")
    if not text:
        return None
    if re.fullmatch(r"\d+", text):
        return int(text)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)万", text)
    if match:
        value = float(match.group(1)) * 10000
        return int(value) if value.is_integer() else None
    total, section, current = 0, 0, None
    for char in text:
        if char.isdigit():
            current = (current or 0) * 10 + int(char)
        elif char in _KANJI_DIGITS:
            current = (current or 0) * 10 + _KANJI_DIGITS[char]
        elif char in _KANJI_UNITS:
            section += (current if current is not None else 1) * _KANJI_UNITS[char]
            current = None
        elif char == "万":
            total += (section + (current or 0)) * 10000
            section, current = 0, None
        else:
            return None
    return total + section + (current or 0)


def _integer(question: Question, text: str, _today: date) -> int:
    body = _APPROX.sub("", text.rstrip("。.です"))
    units = [u for u in (question.unit, "人", "名", "社", "件", "回", "時間", "分", "円", "年", "か月", "ヶ月") if u]
    previous = None
    while previous != body:  # 「60名くらい」「約50人程度」: strip units and hedges in any order
        previous = body
        body = _APPROX_TAIL.sub("", body).strip()
        for unit in units:
            if body.endswith(unit):
                body = body[: -len(unit)].strip()
                break
    if re.search(r"\d\s*[~\-]\s*\d", body):
        raise AnswerError("hearing_expect_single_number", **_range_values(question))
    value = parse_japanese_number(body)
    if value is None:
        raise AnswerError("hearing_expect_integer", **_range_values(question))
    if (question.min is not None and value < question.min) or (question.max is not None and value > question.max):
        raise AnswerError("hearing_expect_range", **_range_values(question))
    return value


def _range_values(question: Question) -> dict[str, object]:
    low = "" if question.min is None else f"{question.min:,}"
    high = "" if question.max is None else f"{question.max:,}"
    return {"min": low, "max": high, "unit": question.unit or ""}


# ----------------------------------------------------------------- choices
def _match_option(question: Question, token: str) -> str | None:
    token = normalize(token)
    ordinal = _ORDINAL.fullmatch(token)
    if ordinal:
        index = int(ordinal.group(1))
        if 1 <= index <= len(question.options):
            return question.options[index - 1].value
        return None
    exact = [o.value for o in question.options if token in (normalize(o.label), normalize(o.value))]
    if exact:
        return exact[0]
    partial = [o.value for o in question.options if token in normalize(o.label) or normalize(o.label) in token]
    if len(partial) == 1 and len(token) >= 2:
        return partial[0]
    return None


def _single_choice(question: Question, text: str, _today: date) -> str:
    value = _match_option(question, text)
    if value is None:
        raise AnswerError("hearing_expect_choice", count=len(question.options))
    return value


def _multi_choice(question: Question, text: str, _today: date) -> list[str]:
    whole = _match_option(question, text)
    tokens = [whole] if whole is not None else None
    if tokens is None:
        tokens = []
        for part in filter(None, _CHOICE_SPLIT.split(text)):
            value = _match_option(question, part)
            if value is None:
                raise AnswerError("hearing_expect_choices", count=len(question.options), token=part)
            tokens.append(value)
    return validate_selection(question, tokens)


def validate_selection(question: Question, values: list[str]) -> list[str]:
    """Order as in the form, duplicates removed, selection-count limits checked."""
    chosen = set(values)
    ordered = [o.value for o in question.options if o.value in chosen]
    if not ordered:
        raise AnswerError("hearing_expect_some_selection")
    if question.min_selections and len(ordered) < question.min_selections:
        raise AnswerError("hearing_expect_min_selections", n=question.min_selections)
    if question.max_selections and len(ordered) > question.max_selections:
        raise AnswerError("hearing_expect_max_selections", n=question.max_selections)
    return ordered


def _yes_no(_question: Question, text: str, _today: date) -> bool:
    word = text.lower().rstrip("。.!！")
    if word in YES_WORDS:
        return True
    if word in NO_WORDS:
        return False
    if word in ("1",):
        return True
    if word in ("2",):
        return False
    raise AnswerError("hearing_expect_yes_no")


# ------------------------------------------------------------------- dates
_ERAS = {"令和": 2018, "R": 2018, "平成": 1988, "H": 1988}


def _date(_question: Question, text: str, today: date) -> str:
    word = text.replace(" ", "")
    relative = {"今日": 0, "本日": 0, "明日": 1, "あした": 1, "明後日": 2, "あさって": 2}
    if word in relative:
        return (today + timedelta(days=relative[word])).isoformat()
    patterns = (
        (r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?", None),
        (r"(令和|平成|R|H)(\d{1,2}|元)[年.\-/](\d{1,2})[月.\-/](\d{1,2})日?", "era"),
        (r"(\d{1,2})[/月](\d{1,2})日?", "no_year"),
    )
    for pattern, kind in patterns:
        match = re.fullmatch(pattern, word, flags=re.IGNORECASE)
        if not match:
            continue
        try:
            if kind is None:
                value = date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
            elif kind == "era":
                era_year = 1 if match.group(2) == "元" else int(match.group(2))
                value = date(_ERAS[match.group(1).upper()] + era_year, int(match.group(3)), int(match.group(4)))
            else:
                value = date(today.year, int(match.group(1)), int(match.group(2)))
        except ValueError:
            raise AnswerError("hearing_expect_real_date") from None
        return value.isoformat()
    raise AnswerError("hearing_expect_date")


# ------------------------------------------------------- contact details
def _postal_code(_question: Question, text: str, _today: date) -> str:
    match = re.fullmatch(r"(?:〒|郵便番号)?\s*(\d{3})\s*-?\s*(\d{4})", text.replace("ー", "-").replace("−", "-"))
    if not match:
        raise AnswerError("hearing_expect_postal_code")
    return f"{match.group(1)}-{match.group(2)}"


_ADDRESS_HINT = re.compile(r"(都|道|府|県|市|区|町|村|郡|丁目|番地)")


def _address(question: Question, text: str, _today: date) -> str:
    if len(text) < 4 or not _ADDRESS_HINT.search(text) or len(text) > question.max_length:
        raise AnswerError("hearing_expect_address")
    return text


def _phone(_question: Question, text: str, _today: date) -> str:
    """「03-1234-5678」「(03)1234-5678」「+81 90 1234 5678」: hyphens kept where given, else digits only."""
    cleaned = re.sub(r"[()（）ー−]", "-", text.replace(" ", ""))
    if cleaned.startswith("+81"):
        cleaned = "0" + cleaned[3:].lstrip("-")
    cleaned = re.sub(r"-{2,}", "-", cleaned).strip("-")
    digits = cleaned.replace("-", "")
    if not re.fullmatch(r"0\d{9,10}", digits) or not re.fullmatch(r"[\d-]+", cleaned):
        raise AnswerError("hearing_expect_phone")
    return cleaned if "-" in cleaned else digits


def _email(_question: Question, text: str, _today: date) -> str:
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError:
        raise AnswerError("hearing_expect_email") from None


def corporate_number_is_valid(digits: str) -> bool:
    """法人番号: 13 digits whose first digit is 9 - (Σ P_n × Q_n mod 9) over the other 12."""
    if not re.fullmatch(r"\d{13}", digits):
        return False
    base = digits[1:]
    total = sum(int(d) * (1 if n % 2 else 2) for n, d in enumerate(reversed(base), start=1))
    return int(digits[0]) == 9 - total % 9


def _corporate_number(_question: Question, text: str, _today: date) -> str:
    digits = re.sub(r"[\s-]", "", text)
    if not re.fullmatch(r"\d{13}", digits):
        raise AnswerError("hearing_expect_corporate_number")
    if not corporate_number_is_valid(digits):
        raise AnswerError("hearing_expect_corporate_number_check")
    return digits


def _text(question: Question, text: str, _today: date) -> str:
    if len(text) > question.max_length:
        raise AnswerError("hearing_expect_shorter", limit=question.max_length)
    return text


_PARSERS = {
    "text": _text,
    "integer": _integer,
    "single_choice": _single_choice,
    "multi_choice": _multi_choice,
    "yes_no": _yes_no,
    "date": _date,
    "postal_code": _postal_code,
    "address": _address,
    "phone": _phone,
    "email": _email,
    "corporate_number": _corporate_number,
}


def format_answer(question: Question, value: Any, locale: str = "ja") -> str:
    """How an answer reads in the summary and the exports (labels, not codes)."""
    if value is None:
        return "（未回答）" if locale == "ja" else "(no answer)"
    if question.type == "yes_no":
        return ("はい" if value else "いいえ") if locale == "ja" else ("yes" if value else "no")
    if question.type == "single_choice":
        return question.option_label(str(value))
    if question.type == "multi_choice":
        return "、".join(question.option_label(str(v)) for v in value)
    if question.type == "integer":
        return f"{int(value):,}{question.unit or ''}"
    return str(value)
