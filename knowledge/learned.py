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

from knowledge import replies
from knowledge.faq_match import closest_first, faq_hit
from knowledge.faq_match import match as faq_match
from knowledge.features import UNIT_FEATURES, Candidate, candidates, gate_features
from knowledge.model import AnswerModel, load_model
from knowledge.answering import Answer, confident as confident_answer, not_sure, other_edition
from knowledge.retrieval import Hit, Retrieval

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


def excerpt_picks(ranked: list[Candidate]) -> list[tuple[str, Hit]]:
    """The best two units from different passages, each with the passage it stands in."""
    return replies.excerpt_picks([(c.unit.text, c.hit) for c in ranked])


def answer_from(retrieval: Retrieval, threshold: float | None = None, *, model: AnswerModel | None = None,
                today: date | None = None, general: bool = False) -> Answer:
    """The answer (or the honest handoff) for one retrieval. `threshold` can only make the gate stricter
    than its calibrated threshold (an operator's setting); `today` defaults to today in Japan; `general`:
    asked at a general entry point of an installation with several programs (the gate's general threshold)."""
    question = retrieval.question
    if not retrieval.hits:
        return Answer(question, "", False, 0.0, kind="none", features={"unknown": retrieval.unknown_share})
    declined = other_edition(retrieval)
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
    confident = bool(model.gate.confident(gate_x, general)[0]) and probability >= (threshold or 0.0)
    # A FAQ entry (curated or staff-published) answers a question asked in other words when the FAQ stage
    # matches the two questions (knowledge/faq_match.py); a near miss about something the entry does not
    # say is left to the unit gate.
    found = faq_match(retrieval)
    hit, text = best.hit, best.unit.text
    if found is not None and found.confident and found.probability >= (threshold or 0.0):
        confident, probability = True, found.probability
        hit, text = faq_hit(retrieval, found), found.entry.answer
        features.update({f"faq_{k}": v for k, v in found.features.items()})
    if confident:
        # Cited to the unit's own passage (its source and section) alone: that is what the answer says.
        return confident_answer(retrieval, text, hit, round(probability, 4), features,
                                "faq" if hit.chunk.kind == "faq" else "extractive", today)
    is_related = replies.related(retrieval, max(c.features[_COV_PATH] for c in ranked))
    if found is not None and found.closest:
        # A question about what a FAQ entry is clearly about is related, whatever words it uses: that entry
        # is quoted first.
        is_related = True
        ranked = closest_first(retrieval, found, ranked)
    return not_sure(retrieval, excerpt_picks(ranked), round(probability, 4), features, is_related)
