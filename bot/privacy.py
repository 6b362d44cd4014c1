"""Masking of personal data before any text leaves the machine (LLM, embedding API, logs).

Japanese-aware patterns: phone numbers (03-1234-5678, 090-1234-5678,
0120-…), e-mail addresses, postal codes (〒123-4567), street addresses
(都道府県 + 市区町村 + 番地) and personal names written with an honorific
(山田太郎様, 佐藤さん, 担当の鈴木). Masking is deliberately greedy: a false
positive costs a word, a false negative leaks a person.
"""

from __future__ import annotations

import re
import unicodedata

_PREFECTURES = (
    "北海道|青森県|岩手県|宮城県|秋田県|山形県|福島県|茨城県|栃木県|群馬県|埼玉県|千葉県|東京都|神奈川県|新潟県|富山県|"
    "石川県|福井県|山梨県|長野県|岐阜県|静岡県|愛知県|三重県|滋賀県|京都府|大阪府|兵庫県|奈良県|和歌山県|鳥取県|島根県|"
    "岡山県|広島県|山口県|徳島県|香川県|愛媛県|高知県|福岡県|佐賀県|長崎県|熊本県|大分県|宮崎県|鹿児島県|沖縄県"
)
_PATTERNS: list[tuple[str, str]] = [
    # The lookbehind lets a match start only where a run of address characters starts, so a long word
    # without an @ is scanned once, not once per position (that was quadratic: 11 s on a 60 KB body).
    (r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+", "[メール]"),
    (r"〒\s*\d{3}\s*[-‐ー−]\s*\d{4}|\b\d{3}-\d{4}\b(?!-)", "[郵便番号]"),
    (r"(?<!\d)\+81[-\s]?\(?0?\d{1,4}\)?[-\s]?\d{1,4}[-\s]?\d{3,4}(?!\d)"
     r"|(?<!\d)0\d{1,4}[-‐ー−(（\s]\d{1,4}[-‐ー−)）\s]\d{3,4}(?!\d)|(?<!\d)0[5789]0\d{8}(?!\d)|(?<!\d)0\d{9}(?!\d)",
     "[電話番号]"),
    (rf"(?:{_PREFECTURES})[^\s、。,]{{1,12}}?[市区町村郡][^\s、。,]{{0,20}}?\d+(?:[-‐ー−丁目番地号の]\d*)*", "[住所]"),
    (r"[一-龥々]{1,4}\s?[一-龥々ぁ-んァ-ヶ]{0,4}(?=様|さん|氏|殿|先生)", "[氏名]"),
    (r"(?<=担当の)[一-龥々]{1,4}", "[氏名]"),
    (r"(?:(?<=私は)|(?<=氏名は)|(?<=名前は))[一-龥々ぁ-んァ-ヶ]{2,8}(?=です|と申します|といいます)", "[氏名]"),
    # A self-introduction opening a sentence: 「山田太郎です。」「佐藤と申します」
    (r"(?:^|(?<=[。\n\s]))[一-龥々]{2,6}(?=(?:です|と申します|といいます)(?:[。、!！\s]|$))", "[氏名]"),
]
#: All patterns in one alternation (one named group each): the text is scanned once, left to right, and
#: every alternative is bounded or anchored at the start of a run, so masking is linear in the text.
_COMBINED = re.compile("|".join(f"(?P<p{i}>{pattern})" for i, (pattern, _) in enumerate(_PATTERNS)))
_PLACEHOLDERS = {f"p{i}": placeholder for i, (_, placeholder) in enumerate(_PATTERNS)}


def _placeholder(match: re.Match[str]) -> str:
    return _PLACEHOLDERS[match.lastgroup or ""]


def mask_personal_data(text: str) -> str:
    """Replace personal data in `text` with bracketed placeholders.

    The text is NFKC-normalized first, so full-width digits and letters (０９０－…, ｈａｎａｋｏ＠…,
    〒１００－０００１) are caught like their ASCII forms.
    """
    return _COMBINED.sub(_placeholder, unicodedata.normalize("NFKC", text))
