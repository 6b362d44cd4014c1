"""Answer parsers for every question type, at their edges, plus property tests (never crash)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.hearing.answers import AnswerError, corporate_number_is_valid, parse_answer, parse_japanese_number
from handlers.hearing.schema import Question

TODAY = date(2026, 11, 22)


def q(type_: str, **kw: object) -> Question:
    return Question(id="q", prompt="質問", type=type_, **kw)  # type: ignore[arg-type]


CHOICES = q("single_choice", options=["製造業", "建設業", {"value": "other", "label": "その他"}])
MULTI = q("multi_choice", options=["平日の日中", "平日の夜", "土曜日", "日曜日"], max_selections=3)
INTEGER = q("integer", min=1, max=100000, unit="人")


@pytest.mark.parametrize(("typed", "value"), [
    ("50", 50), ("５０", 50), ("約50人", 50), ("50名くらい", 50), ("およそ1,200人", 1200), ("五十人", 50),
    ("1万2千", 12000), ("1.5万人", 15000), ("三百五", 305), ("100000", 100000), ("1", 1),
])
def test_integer_answers(typed: str, value: int) -> None:
    assert parse_answer(INTEGER, typed) == value


@pytest.mark.parametrize(("typed", "key"), [
    ("たくさん", "hearing_expect_integer"), ("50~60人", "hearing_expect_single_number"),
    ("０", "hearing_expect_range"), ("100001", "hearing_expect_range"), ("", "hearing_expect_nonempty"),
    ("-3", "hearing_expect_integer"),
])
def test_integer_refusals(typed: str, key: str) -> None:
    with pytest.raises(AnswerError) as error:
        parse_answer(INTEGER, typed)
    assert error.value.key == key


@pytest.mark.parametrize(("typed", "value"), [
    ("1", "製造業"), ("３", "other"), ("2番", "建設業"), ("その他", "other"), ("建設", "建設業"), ("製造業です", "製造業"),
])
def test_single_choice(typed: str, value: str) -> None:
    assert parse_answer(CHOICES, typed) == value


@pytest.mark.parametrize("typed", ["4", "0", "農業", "業"])
def test_single_choice_refusals(typed: str) -> None:
    with pytest.raises(AnswerError):
        parse_answer(CHOICES, typed)


def test_multi_choice() -> None:
    assert parse_answer(MULTI, "2、1") == ["平日の日中", "平日の夜"]
    assert parse_answer(MULTI, "土曜日・日曜日") == ["土曜日", "日曜日"]
    assert parse_answer(MULTI, "1 1 2") == ["平日の日中", "平日の夜"]
    with pytest.raises(AnswerError) as error:
        parse_answer(MULTI, "1,2,3,4")
    assert error.value.key == "hearing_expect_max_selections"
    with pytest.raises(AnswerError) as error:
        parse_answer(MULTI, "1,9")
    assert error.value.values["token"] == "9"


@pytest.mark.parametrize(("typed", "value"), [
    ("はい", True), ("ハイ", True), ("YES", True), ("あります", True), ("可能", True), ("いいえ", False),
    ("なし", False), ("できません", False), ("×", False), ("はい。", True),
])
def test_yes_no(typed: str, value: bool) -> None:
    assert parse_answer(q("yes_no"), typed) is value


@pytest.mark.parametrize(("typed", "value"), [
    ("2027-01-15", "2027-01-15"), ("2027/1/15", "2027-01-15"), ("２０２７年１月１５日", "2027-01-15"),
    ("令和9年1月15日", "2027-01-15"), ("R9.1.15", "2027-01-15"), ("令和元年5月1日", "2019-05-01"),
    ("12月1日", "2026-12-01"), ("明日", "2026-11-23"),
])
def test_dates(typed: str, value: str) -> None:
    assert parse_answer(q("date"), typed, today=TODAY) == value


@pytest.mark.parametrize(("typed", "key"), [
    ("2027-02-30", "hearing_expect_real_date"), ("来月", "hearing_expect_date"), ("13月1日", "hearing_expect_real_date"),
])
def test_date_refusals(typed: str, key: str) -> None:
    with pytest.raises(AnswerError) as error:
        parse_answer(q("date"), typed, today=TODAY)
    assert error.value.key == key


def test_contact_details() -> None:
    assert parse_answer(q("postal_code"), "〒123-4567") == "123-4567"
    assert parse_answer(q("postal_code"), "１２３４５６７") == "123-4567"
    assert parse_answer(q("phone"), "03-1234-5678") == "03-1234-5678"
    assert parse_answer(q("phone"), "090 1234 5678") == "09012345678"
    assert parse_answer(q("phone"), "(03)1234-5678") == "03-1234-5678"
    assert parse_answer(q("phone"), "+81-3-1234-5678") == "03-1234-5678"
    assert parse_answer(q("email"), "Tanto@Example.CO.JP") == "Tanto@example.co.jp"
    assert parse_answer(q("address"), "大阪府大阪市北区梅田1-1") == "大阪府大阪市北区梅田1-1"
    for kind, typed in [("postal_code", "123-456"), ("phone", "1234-5678"), ("phone", "03-1234-567"),
                        ("email", "tanto@"), ("address", "梅田"), ("corporate_number", "123")]:
        with pytest.raises(AnswerError):
            parse_answer(q(kind), typed)


def test_corporate_number_check_digit() -> None:
    assert corporate_number_is_valid("7000012050002")  # 国税庁
    assert parse_answer(q("corporate_number"), "7000-0120-50002") == "7000012050002"
    with pytest.raises(AnswerError) as error:
        parse_answer(q("corporate_number"), "1000012050002")
    assert error.value.key == "hearing_expect_corporate_number_check"


def test_text_length_limit() -> None:
    assert parse_answer(q("text", max_length=5), "  あいう  ") == "あいう"
    with pytest.raises(AnswerError):
        parse_answer(q("text", max_length=5), "あいうえおか")


def test_japanese_numbers() -> None:
    assert parse_japanese_number("二千二十六") == 2026
    assert parse_japanese_number("十") == 10
    assert parse_japanese_number("abc") is None


ALL_TYPES = [INTEGER, CHOICES, MULTI, q("yes_no"), q("date"), q("postal_code"), q("address"), q("phone"),
             q("email"), q("corporate_number"), q("text")]


@settings(max_examples=300, deadline=None)
@given(question=st.sampled_from(ALL_TYPES), text=st.text(max_size=80))
def test_any_text_gives_a_value_or_a_polite_refusal(question: Question, text: str) -> None:
    try:
        value = parse_answer(question, text, today=TODAY)
    except AnswerError as error:
        from bot.i18n import t

        import handlers.hearing.chat  # noqa: F401  (registers the re-ask strings)

        assert t(error.key, "ja", **error.values) != error.key  # every refusal has a message
        return
    assert value is not None
    if question.type == "integer":
        assert 1 <= value <= 100000
