"""What the bot says around an answer, the same for both pipelines (classic and learned).

- A question about a fiscal year or round the sources are not is declined, naming the editions held.
- A confident answer that states a deadline or period already passed (today in Japan time) says so.
- When not sure, the best one or two related passages are quoted as short excerpts, each cut at a sentence
  or phrase boundary, with where it stands (title and section).
- When nothing is related, the question is outside what this window handles: no documents are listed.

The wording is in `knowledge/locales/<locale>.yaml` (one copy; the chat handler renders the same keys in the
person's language, and the `knowledge answer` contract keeps the Japanese text).
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from bot.i18n import DEFAULT_LOCALE, add_locale_dir, t
from knowledge.edition import Edition, asks_other_edition, passed_dates, today_in_japan
from knowledge.retrieval import Hit, Retrieval

add_locale_dir(Path(__file__).resolve().parent / "locales")

#: Longest excerpt quoted in an unsure reply, ellipses included (a chat bubble shows two and stays readable).
EXCERPT_CHARS = 120
#: Excerpts an unsure reply quotes, each from its own passage. Always two when there are two: the second holds
#: the answer often enough to be worth a line (leave-one-document-out, program window: the answer in the reply
#: 71.7% -> 76.5% against quoting a second only when rated within 1.0 of the first; benchmarks/excerpt_eval.py).
MAX_EXCERPTS = 2
#: An excerpt starts at most this far before the question's rarest word it holds (enough for the phrase that
#: leads into it), so the word is in the excerpt however long the passage.
EXCERPT_LEAD_CHARS = 40
#: Share of the question's idf mass some candidate and its section path must cover for the question to be
#: "related" to the documents at all: below it, the reply lists no excerpts (they would be noise).
RELATED_COVERAGE = 0.4
#: ... and the documents must know at least half of the question's words (by idf): 「離婚の手続き」 shares
#: 手続き with them, but 離婚 is what it is about.
RELATED_UNKNOWN = 0.5

#: After these a sentence ends; after the phrase marks a phrase does (a comma between digits is no boundary).
_SENTENCE_END = "。！？!?"
_PHRASE_END = "、，；;：:）)」』】 ・"
_ELLIPSIS = "…"


def related(retrieval: Retrieval, best_coverage: float) -> bool:
    """The documents say something about the question: they know most of its words and some candidate
    (with its section path) covers a fair share of them."""
    return retrieval.unknown_share < RELATED_UNKNOWN and best_coverage >= RELATED_COVERAGE


def _boundaries(text: str) -> list[int]:
    """Positions a cut may fall at (after a sentence or phrase mark), in order."""
    out = []
    for i, char in enumerate(text):
        if char in _SENTENCE_END or char in _PHRASE_END:
            if char in ",，" and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit():
                continue
            out.append(i + 1)
    return out


def short_excerpt(text: str, anchors: list[str], limit: int = EXCERPT_CHARS) -> str:
    """At most `limit` characters of `text` around the first of `anchors` it says (the question's rarest words
    first), starting at a sentence or phrase boundary and ending at one, an ellipsis where it was cut."""
    text = re.sub(r"\s*\n\s*", " ", text).strip()
    if len(text) <= limit:
        return text
    anchor = next((text.find(w) for w in anchors if w and w in text), 0)
    cuts = _boundaries(text)
    sentence_starts = [0] + [c for c in cuts if text[c - 1] in _SENTENCE_END]
    # Start at the sentence that holds the anchor, or, when that is too far before it, at the phrase before it.
    start = max(s for s in sentence_starts if s <= anchor)
    if anchor - start > EXCERPT_LEAD_CHARS:
        phrases = [c for c in cuts if anchor - EXCERPT_LEAD_CHARS <= c <= anchor]
        start = phrases[0] if phrases else anchor
    start = min(start, len(text))
    room = limit - (1 if start else 0)
    if len(text) - start <= room:
        return (_ELLIPSIS if start else "") + text[start:].strip()
    room -= 1  # the closing ellipsis
    ends = [c for c in cuts if start < c <= start + room]
    sentence_ends = [c for c in ends if text[c - 1] in _SENTENCE_END]
    # A whole sentence when one fits past the anchor, else the last phrase that does; no boundary: a hard cut.
    end = next((c for c in reversed(sentence_ends) if c > anchor), None) or (ends[-1] if ends else start + room)
    body = text[start:end].strip()
    return (_ELLIPSIS if start else "") + body + (_ELLIPSIS if end < len(text) else "")


def excerpt_picks(scored: list[tuple[str, Hit]]) -> list[tuple[str, Hit]]:
    """The texts an unsure reply quotes, from `scored` (text, its passage) best first: the first MAX_EXCERPTS
    of different passages."""
    out: list[tuple[str, Hit]] = []
    for text, hit in scored:
        if any(hit.chunk.id == picked.chunk.id for _, picked in out):
            continue
        out.append((text, hit))
        if len(out) == MAX_EXCERPTS:
            break
    return out


def anchors_of(retrieval: Retrieval) -> list[str]:
    """The question's words, rarest first: an excerpt is cut around the first it holds."""
    return sorted(retrieval.idf, key=lambda w: retrieval.idf[w], reverse=True)


def held_editions(retrieval: Retrieval) -> list[Edition]:
    """The editions the question may be about: the named document's, else every source's (those with a
    fiscal year first said, when some have one)."""
    index = retrieval.index
    if index is None:
        return []
    named = index.editions.get(retrieval.steered_source) if retrieval.steered_source is not None else None
    editions = [named] if named is not None else list(index.editions.values())
    with_year = [e for e in editions if e.fiscal_year]
    return list(dict.fromkeys(with_year or editions))


def asks_another_edition(retrieval: Retrieval) -> bool:
    index = retrieval.index
    if index is None:
        return False
    named = index.editions.get(retrieval.steered_source) if retrieval.steered_source is not None else None
    return asks_other_edition(retrieval.question, list(index.editions.values()), index.corpus_text, named) is not None


def describe_editions(editions: list[Edition], locale: str = DEFAULT_LOCALE) -> str:
    return t("knowledge_list_separator", locale).join(e.describe(locale) for e in editions)


def other_edition_text(editions: list[Edition], locale: str = DEFAULT_LOCALE) -> str:
    """The decline of a question about another fiscal year or round, naming the editions held."""
    if not editions:
        return t("knowledge_other_edition", locale)
    return t("knowledge_other_edition_held", locale, held=describe_editions(editions, locale))


def passed_note(deadline: date, today: date, locale: str = DEFAULT_LOCALE) -> str:
    return t("knowledge_deadline_passed", locale, deadline=Edition.date_label(deadline, locale),
             today=Edition.date_label(today, locale))


def deadline_passed(retrieval: Retrieval, hit: Hit, text: str, today: date | None = None) -> date | None:
    """The latest deadline or period end `text` (an answer taken from `hit`) states that is before today in
    Japan (or `today`); None when it states none that has passed."""
    index = retrieval.index
    edition = index.editions.get(hit.source.id) if index is not None else None
    passed = passed_dates(text, edition, today or today_in_japan())
    return passed[-1] if passed else None


def excerpt_lines(excerpts: list[tuple[str, str]]) -> list[str]:
    """「・「excerpt」（title ／ section）」 lines, as every channel shows them."""
    return [f"・「{text}」（{where}）" for text, where in excerpts]
