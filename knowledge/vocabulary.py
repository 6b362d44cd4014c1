"""The corpus vocabulary filed under keys, to find the corpus words that share a key with a question word.

Synonyms (a Sudachi synonym group id) and inflected forms (a stem) are both found
this way; only what a word's keys are differs.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable


class KeyedVocabulary:
    """Corpus words by key: `keys(word)` files each corpus word; `sharing` finds the words under given keys."""

    def __init__(self, vocabulary: Iterable[str], keys: Callable[[str], Iterable[Hashable]]) -> None:
        self._words_under: dict[Hashable, set[str]] = {}
        for word in vocabulary:
            for key in keys(word):
                self._words_under.setdefault(key, set()).add(word)

    def sharing(self, word: str, keys: Iterable[Hashable]) -> set[str]:
        """Corpus words filed under any of `keys` (the keys of `word`), other than `word` itself."""
        found: set[str] = set()
        for key in keys:
            found |= self._words_under.get(key, set())
        found.discard(word)
        return found
