"""The last stages: rank the answer units, let the gate decide, and say what the bot knows.

Pipeline (each stage one interface; docs/BENCHMARKS.md measures each removed or swapped):
query analysis and retrievers and fusion (knowledge/retrieval.py) -> answer units (knowledge/units.py)
-> unit ranking (learned, knowledge/model.py over knowledge/features.py) -> answer gate (learned,
calibrated). Before ranking, a question about an edition the sources are not (another fiscal year or
round) is declined with the edition the bot holds; after it, an answer stating a deadline that has
passed (Japan time) says so.

When the gate is not sure, the reply quotes the best one or two related excerpts (with their section)
for a person to read, and offers a staff member; when nothing related is found, it says the question is
outside what this window handles, without listing documents.
"""

from __future__ import annotations

from datetime import date

import numpy as np

from knowledge.edition import Edition, asks_other_edition, japanese_date, passed_dates, today_in_japan
from knowledge.faq_match import closest_first, faq_hit
from knowledge.faq_match import match as faq_match
from knowledge.features import UNIT_FEATURES, Candidate, candidates, gate_features
from knowledge.model import AnswerModel, load_model
from knowledge.answering import Answer, Excerpt, citation_for
from knowledge.retrieval import Retrieval

#: Longest excerpt quoted in an unsure reply (a chat bubble shows two of them and stays readable).
EXCERPT_CHARS = 120
#: Excerpts an unsure reply quotes.
MAX_EXCERPTS = 2
#: A second excerpt is quoted only when the ranker rates it within this of the first (ranker units, about
#: one standard deviation of a feature's weight): a far weaker one is noise, and may be any text at all.
SECOND_EXCERPT_MARGIN = 1.0
#: Share of the question's idf mass some unit and its section path must cover for the question to be
#: "related" to the documents at all: below it, the unsure reply lists no excerpts (they would be noise).
RELATED_COVERAGE = 0.4
#: ... and the documents must know at least half of the question's words (by idf): 「離婚の手続き」 shares
#: 手続き with them, but 離婚 is what it is about.
RELATED_UNKNOWN = 0.5
_COV_PATH = UNIT_FEATURES.index("cov_path")


def unit_candidates(retrieval: Retrieval) -> list[Candidate]:
    """The answer units of the retrieved passages with their features."""
    index = retrieval.index
    if index is None:
        return candidates(retrieval, faq=retrieval.faq)
    return candidates(retrieval, index.headers, index.positions, retrieval.faq, index.title_keys,
                      index.title_tokens, index.unit_vectors)


def rank(retrieval: Retrieval, model: AnswerModel) -> list[Candidate]:
    """The answer units of the retrieved passages, best first by the learned ranker."""
    found = unit_candidates(retrieval)
    if not found:
        return []
    scores = model.ranker.score(np.vstack([c.features for c in found]))
    for candidate, score in zip(found, scores, strict=True):
        candidate.score = float(score)
    return sorted(found, key=lambda c: c.score, reverse=True)


def _excerpt(text: str, anchor_words: list[str]) -> str:
    text = text.replace("\n", " ")
    if len(text) <= EXCERPT_CHARS:
        return text
    position = next((text.find(w) for w in anchor_words if w in text), 0)
    start = max(0, min(position - 30, len(text) - EXCERPT_CHARS + 1))
    return ("…" if start else "") + text[start:start + EXCERPT_CHARS - 1] + "…"


def excerpts(retrieval: Retrieval, ranked: list[Candidate]) -> list[Excerpt]:
    """The best one or two units from different passages, shortened, each with where it stands."""
    anchors = sorted(retrieval.idf, key=retrieval.idf.get, reverse=True)  # type: ignore[arg-type]
    out: list[Excerpt] = []
    seen: set[str] = set()
    for candidate in ranked:
        if candidate.hit.chunk.id in seen:
            continue
        if out and candidate.score < ranked[0].score - SECOND_EXCERPT_MARGIN:
            break
        seen.add(candidate.hit.chunk.id)
        out.append(Excerpt(_excerpt(candidate.unit.text, anchors), citation_for(candidate.hit).label()))
        if len(out) == MAX_EXCERPTS:
            break
    return out


def held_editions(retrieval: Retrieval) -> list[Edition]:
    index = retrieval.index
    return list(index.editions.values()) if index is not None else []


def edition_reply(retrieval: Retrieval) -> Answer | None:
    """The decline for a question about another fiscal year or round, naming the editions held."""
    index = retrieval.index
    if index is None:
        return None
    editions = held_editions(retrieval)
    named = index.editions.get(retrieval.steered_source) if retrieval.steered_source is not None else None
    if asks_other_edition(retrieval.question, editions, index.corpus_text, named) is None:
        return None
    wanted = [named] if named is not None else editions
    held = "、".join(e.describe() for e in wanted if e.fiscal_year) or "、".join(e.describe() for e in wanted)
    body = (f"お尋ねの年度・回の情報は、この窓口では扱っていません。この窓口が持っている資料は{held}です。"
            if held else "お尋ねの年度・回の情報は、この窓口では扱っていません。")
    return Answer(retrieval.question, body, False, 0.0, kind="other_edition")


def answer_from(retrieval: Retrieval, threshold: float | None = None, *, model: AnswerModel | None = None,
                today: date | None = None) -> Answer:
    """The answer (or the honest handoff) for one retrieval. `threshold` can only make the gate stricter
    than its calibrated threshold (an operator's setting); `today` defaults to today in Japan."""
    question = retrieval.question
    if not retrieval.hits:
        return Answer(question, "", False, 0.0, kind="none", features={"unknown": retrieval.unknown_share})
    declined = edition_reply(retrieval)
    if declined is not None:
        return declined
    model = model or load_model()
    ranked = rank(retrieval, model)
    if not ranked:
        return Answer(question, "", False, 0.0, kind="outside", features={"unknown": retrieval.unknown_share})
    gate_x = gate_features(retrieval, ranked)
    probability = float(model.gate.probability(gate_x)[0])
    features = dict(zip(model.gate.names, (round(float(v), 4) for v in gate_x), strict=True))
    best = ranked[0]
    # An operator's threshold (settings.knowledge.answer_threshold) can only make the calibrated gate stricter.
    confident = bool(model.gate.confident(gate_x)[0]) and probability >= (threshold or 0.0)
    # A FAQ entry (curated or staff-published) answers a question asked in other words when the FAQ stage
    # matches the two questions (knowledge/faq_match.py); a near miss about something the entry does not
    # say is left to the unit gate.
    found = faq_match(retrieval)
    hit, text = best.hit, best.unit.text
    if found is not None and found.confident and found.probability >= (threshold or 0.0):
        confident, probability = True, found.probability
        hit, text = faq_hit(retrieval, found), found.entry.answer
        features.update({f"faq_{k}": v for k, v in found.features.items()})
    citations = [citation_for(hit)] + [citation_for(h) for h in retrieval.hits[:3] if h is not hit][:2]
    if confident and hit.chunk.kind == "faq":
        citations = citations[:1]  # a FAQ entry's answer is its FAQ's, no other passage's (as the classic cites)
    if confident:
        note = ""
        index = retrieval.index
        edition = index.editions.get(hit.source.id) if index is not None else None
        passed = passed_dates(text, edition, today or today_in_japan())
        if passed:
            note = (f"※この期日（{japanese_date(passed[-1])}）はすでに過ぎています"
                    f"（本日 {japanese_date(today or today_in_japan())}）。最新の募集状況は担当者にご確認ください。")
        return Answer(question, text, True, round(probability, 4), citations, features,
                      kind="faq" if hit.chunk.kind == "faq" else "extractive", note=note)
    # A question about what a FAQ entry is clearly about is related, whatever words it uses.
    closest = found is not None and found.closest
    related = closest or (retrieval.unknown_share < RELATED_UNKNOWN
                          and max(c.features[_COV_PATH] for c in ranked) >= RELATED_COVERAGE)
    if not related:
        return Answer(question, "", False, round(probability, 4), [], features, kind="outside")
    if found is not None and closest:  # the FAQ entry clearly closest to the question is quoted first
        ranked = closest_first(retrieval, found, ranked)
        first = ranked[0].hit
        citations = [citation_for(first)] + [citation_for(h) for h in retrieval.hits[:3] if h is not first][:2]
    quoted = excerpts(retrieval, ranked)
    body = "関係しそうな記載：\n" + "\n".join(f"・「{e.text}」（{e.where}）" for e in quoted)
    return Answer(question, body, False, round(probability, 4), citations, features, kind="unsure", excerpts=quoted)
