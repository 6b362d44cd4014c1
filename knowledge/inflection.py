"""One word as verb and as noun: 申し込む / 申し込み, 支払う / 支払い, 問い合わせる / 問い合わせ.

Japanese makes a noun of a verb by its 連用形 (申し込む -> 申し込み), and Sudachi
normalizes the two to different forms, so 「申込方法」 in a question missed
「申し込むには」 in an FAQ. Both share the stem left when the last kana is
dropped (申し込), and an ichidan verb's stem is the noun itself
(問い合わせる -> 問い合わせ). Stems of one kanji (使う -> 使) are too short to
mean one word and are not used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from knowledge.vocabulary import KeyedVocabulary

_HIRAGANA = re.compile(r"[\u3041-\u309f]")
_KANJI = re.compile(r"[\u4e00-\u9fff]")


def stems(word: str) -> set[str]:
    """The stems a word shares with its verb or noun form (empty for words without an inflected end)."""
    if len(word) < 3 or not _HIRAGANA.fullmatch(word[-1]) or not _KANJI.search(word):
        return set()
    found = {word[:-1]}
    if not word.endswith("る"):
        found.add(word)  # a 連用形 noun (問い合わせ) is the stem of its ichidan verb (問い合わせる)
    return {stem for stem in found if len(stem) >= 2 and _KANJI.search(stem)}


class VariantIndex:
    """The corpus vocabulary by stem, to find the corpus's verb or noun form of a question word."""

    def __init__(self, vocabulary: Iterable[str]) -> None:
        self._vocabulary = KeyedVocabulary(vocabulary, stems)

    def variants(self, word: str) -> set[str]:
        """Corpus words that are `word` in another form (申し込み for 申し込む), other than itself."""
        return self._vocabulary.sharing(word, stems(word))
