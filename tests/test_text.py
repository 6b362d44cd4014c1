from hypothesis import given
from hypothesis import strategies as st

from bot.text import compact, has_meaningful_text, normalize


def test_full_width_digits_letters_and_spaces_are_folded() -> None:
    assert normalize("　専門家派遣は　１年度に３回まで　") == "専門家派遣は 1年度に3回まで"
    assert normalize("ＡＢＣ１２３") == "ABC123"


def test_wave_dashes_become_one_character() -> None:
    assert normalize("10:00〜17:00") == normalize("10:00～17:00") == "10:00~17:00"


def test_half_width_katakana_and_zero_width() -> None:
    assert normalize("ｶﾞｲﾄﾞ\u200b") == "ガイド"


def test_compact_removes_spaces_and_thousands_separators() -> None:
    assert compact("５，２８０ 円") == "5280円"


def test_emoji_only_is_not_meaningful() -> None:
    assert not has_meaningful_text("😀🙏！？")
    assert has_meaningful_text("😀 質問です")


@given(st.text())
def test_normalize_is_idempotent(value: str) -> None:
    once = normalize(value)
    assert normalize(once) == once
    assert "\u3000" not in once and "〜" not in once
