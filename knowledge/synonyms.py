"""Synonyms from Sudachi's own dictionary: words that share a synonym group.

People ask in their own words; the manuals use official ones. sudachidict-core
marks each entry with the ids of its synonym groups (Sudachi's synonym
dictionary), so ホテル代 meets 宿泊費, マイカー 自家用車, 住む 在住, 終わる 終了 and
使う 使用 without a hand-written list tuned to our questions. A question word
is matched by any corpus word in one of its groups.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from functools import lru_cache

from knowledge.tokenize import dictionary
from knowledge.vocabulary import KeyedVocabulary

_lock = threading.Lock()


@lru_cache(maxsize=65536)
def synonym_groups(word: str, nouns_only: bool = False) -> frozenset[int]:
    """Every synonym group of the dictionary entries written `word` (a word may have several senses).

    With `nouns_only`, only its noun senses: the manuals write a concept as a noun (終了, 在住, 宿泊費),
    and a word they use as a suffix (発行済 -> 済み) must not stand for the verb 済む (= 終わる).
    """
    with _lock:  # one shared dictionary; lookups are cheap, so a lock costs nothing that matters
        entries = dictionary().lookup(word)
        return frozenset(group for entry in entries for group in entry.synonym_group_ids()
                         if not nouns_only or entry.part_of_speech()[0] == "名詞")


_HIRAGANA_ONLY = re.compile(r"[\u3041-\u309f]+")


def _distinctive(word: str) -> bool:
    """A word specific enough to stand in for another: not one character (名 in ドメイン名) and not
    hiragana only (すます): those belong to many senses and would match passages about anything."""
    return len(word) >= 2 and not _HIRAGANA_ONLY.fullmatch(word)


def _corpus_groups(word: str) -> frozenset[int]:
    """The groups a corpus word stands for: the noun senses of a distinctive word (see `_distinctive`)."""
    return synonym_groups(word, nouns_only=True) if _distinctive(word) else frozenset()


class SynonymIndex:
    """The corpus vocabulary by synonym group, to find a question word's synonyms the corpus uses."""

    def __init__(self, vocabulary: Iterable[str]) -> None:
        self._vocabulary = KeyedVocabulary(vocabulary, _corpus_groups)

    def synonyms(self, word: str) -> set[str]:
        """Corpus words sharing a synonym group with `word`, other than the word itself."""
        return self._vocabulary.sharing(word, synonym_groups(word))
