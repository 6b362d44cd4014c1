"""Japanese tokenization for BM25: SudachiPy normalized forms of content words.

Sudachi's normalized form makes spelling variants meet (問合せ / 問い合わせ,
５，２８０ / 5280). Split mode A gives short units for recall; the mode C
compound is added when it differs (問合せ先 -> 問い合わせ, 先, 問い合わせ先),
so a compound in the question still matches the exact compound.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from sudachipy import Dictionary, SplitMode

from bot.text import normalize

_CONTENT_POS = {"名詞", "動詞", "形容詞", "副詞", "形状詞", "接頭辞", "接尾辞", "代名詞"}
STOP_WORDS = frozenset(
    """
    いくら 幾ら いくつ 幾つ 幾 つ どこ どの どう どんな どれ どれくらい どのくらい どのよう いつ いつ頃 何時頃 頃 誰
    する 為る ある 有る 在る いる 居る なる 成る できる 出来る れる られる 下さる くださる 教える 良い
    こと 事 もの 物 ため 為 よう 様 等 など ところ 所 方 かた 上 中 うち 内 際 旨 及び 又は 並びに 御 お
    ください です ます 貴社 当社 以下 以上 場合 について 当たり あたり 辺り
    """.split()
)

_local = threading.local()


@lru_cache(maxsize=1)
def dictionary() -> Dictionary:
    """The one sudachidict-core dictionary (tokenizers and synonym lookups share it)."""
    return Dictionary(dict="core")


def _tokenizers():  # type: ignore[no-untyped-def]
    """Sudachi tokenizers are not thread-safe: one pair per thread."""
    pair = getattr(_local, "pair", None)
    if pair is None:
        shared = dictionary()
        pair = (shared.tokenizer(mode=SplitMode.A), shared.tokenizer(mode=SplitMode.C))
        _local.pair = pair
    return pair


def _is_question_word(form: str) -> bool:
    """何 alone or with a counter (何回, 何時間, 何件, 何か月, 何処) asks for the answer; it is never in it."""
    return form.startswith("何") and len(form) <= 4


def _keep(pos: str, form: str) -> bool:
    return pos in _CONTENT_POS and form not in STOP_WORDS and form.strip() != "" and not _is_question_word(form)


def content_morphemes(text: str) -> list[tuple[str, str]]:
    """(normalized form, POS) of the content words, mode A then the mode C compounds, each form once.
    The POS tells the nouns (what a question is about) from its verbs (見なす, 出る: what is done)."""
    text = normalize(text)
    if not text:
        return []
    short, compound = _tokenizers()
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for mode, morphemes in ((SplitMode.A, short.tokenize(text)), (SplitMode.C, compound.tokenize(text))):
        for morpheme in morphemes:
            if mode == SplitMode.C and morpheme.end() - morpheme.begin() < 2:
                continue
            form, pos = morpheme.normalized_form().lower(), morpheme.part_of_speech()[0]
            if _keep(pos, form) and (mode == SplitMode.A or form not in seen):
                out.append((form, pos))
                seen.add(form)
    return out


def tokens(text: str) -> list[str]:
    """Content-word normalized forms (mode A, plus mode C compounds), lowercased."""
    return [form for form, _ in content_morphemes(text)]


def surface_split(text: str) -> list[tuple[str, str, str]]:
    """(surface, normalized form, POS) in mode C: for answer-type and phrase checks."""
    _, compound = _tokenizers()
    return [(m.surface(), m.normalized_form(), m.part_of_speech()[0]) for m in compound.tokenize(normalize(text))]


def colloquial_topic(question: str) -> str:
    """「ホテル代って出る？」 → 「ホテル代は出る？」: the chat topic marker って after a noun that ends in a
    verb's kanji (代, 当, 切) is read by Sudachi as that verb (代わって). It is rewritten as は where は
    makes one noun of the two (ホテル代); a real verb (「払って」「使って」) stays, as its kanji then stands
    alone."""
    if "って" not in question:
        return question
    text = normalize(question)
    _, compound = _tokenizers()
    for morpheme in compound.tokenize(text):
        surface = morpheme.surface()
        if morpheme.part_of_speech()[0] != "動詞" or not surface.endswith("っ") or len(surface) != 2:
            continue
        start = morpheme.begin()
        if text[morpheme.end():morpheme.end() + 1] != "て" or start == 0:
            continue
        rewritten = text[:start + 1] + "は" + text[morpheme.end() + 1:]
        for candidate in compound.tokenize(rewritten):
            if (candidate.end() == start + 1 and candidate.begin() < start
                    and candidate.part_of_speech()[0] == "名詞"):
                return colloquial_topic(rewritten)
    return question
