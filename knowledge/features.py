"""Features of answer units (for the ranker) and of a question's best unit (for the gate).

Every feature is generic: it says how well a unit covers the question's words (with the synonyms and
other forms retrieval found), how well its section's heading path does, whether it states the kind of
fact asked for (knowledge/kinds.py), where it stands, how long it is, how the retrievers scored its
passage and whether both found it. Their weights are learned from the labeled bank
(knowledge/model.py); nothing here names a topic or a question.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from bot.text import normalize
from knowledge.kinds import KIND_NAMES, asked, fact_strings, facts
from knowledge.retrieval import Hit, Retrieval, part_of
from knowledge.units import Unit, units_of
from knowledge.units import _tokens

if TYPE_CHECKING:
    from knowledge.unit_vectors import UnitVectors

#: Passages whose units compete for the answer (fusion may rank the passage with the question's rarest
#: word 11th; 12 measured best for the earlier sentence picker, docs/BENCHMARKS.md).
UNIT_POOL = 12

UNIT_FEATURES = (
    "cov_unit", "cov_unit_literal", "cov_path", "cov_heading", "kanji", "key_word",
    "prior", "hit_rank", "bm25", "dense", "dense_gap", "both_retrievers", "steered_doc",
    "kind_match", "kind_missing", *(f"match_{name}" for name in KIND_NAMES),
    "is_item", "is_list", "is_row", "is_heading", "is_faq",
    "doc_position", "unit_position", "log_len", "long", "cover",
    "faq_forward", "faq_backward", "faq_dense", "title_share",
    # relative to the question's best candidate: a linear ranker cannot compare units otherwise
    "rel_cov_path", "rel_cov_unit", "rel_kanji", "rel_prior",
    # interactions a linear ranker cannot form itself
    "kind_x_cov", "kind_x_key",
    # the unit's own e5 vector against the question's (knowledge/unit_vectors.py), and against the best one
    "unit_dense", "rel_unit_dense", "unit_dense_rank",
    # the unit scored alone: BM25 of its words against the question (lengths over the candidates), the
    # share of the question its own sentence covers without its lead-in, and its passage's heading path
    "bm25_unit", "cov_core", "cov_section",
    # each unit's rank among the question's candidates under each scorer, and their reciprocal-rank fusion
    "rank_cov_path", "rank_cov_unit", "rank_bm25_unit", "rank_unit_dense", "rank_fused",
    # the margin over the best unit of another passage (by coverage and by e5), and over its own passage's best
    "margin_cov_path", "margin_unit_dense", "in_passage_cov", "in_passage_dense",
    # the units beside it in its passage (a heading line asks, the next line answers)
    "prev_cov", "next_cov", "prev_dense", "next_dense",
    # the kinds of fact the question asks for and the kinds the unit states, both given to the ranker so it
    # learns their interactions, and how many of the asked-for kinds it states
    *(f"ask_{name}" for name in KIND_NAMES), *(f"has_{name}" for name in KIND_NAMES), "kind_share",
    # the question: its length, and the share of its idf mass the documents never use
    "q_len", "q_unknown",
)

GATE_FEATURES = (
    "top_score", "margin_other_fact", "top_prob", "cov_unit", "cov_path", "cov_heading", "key_word",
    "kind_match", "kind_missing", "dense", "max_dense", "both_retrievers", "is_faq", "faq_forward",
    "faq_backward", "faq_dense", "unknown", "asks_kind", "steered", "top_bm25", "sources_top5",
    "support", "gap_second",
    "unit_dense", "unit_dense_margin",
    # the best unit under the other scorers: agreement of its ranks, its margins over other passages
    "rank_fused", "rank_cov_path", "rank_unit_dense", "rank_bm25_unit", "margin_cov_path", "margin_unit_dense",
    "bm25_unit", "cov_core", "kind_share", "q_len", "margin_passage",
    # the best unit is a sentence that points to what follows it instead of stating it
    "points_below",
)

#: Ranker-score margins are capped here: beyond it (several standard deviations of the standardized
#: features' weights) a larger margin says nothing more, and one outlier would dominate the gate's fit.
MARGIN_CAP = 3.0
#: A unit longer than this is a run-on list or table dump: it covers words by length alone.
LONG_UNIT_CHARS = 200

#: A sentence that points to what follows it (「以下日時に…登録してください」「…は下記URLから行うこと」「次のとおり」
#: or a closing colon, 「：」 once NFKC-normalized) rather than saying it: shown alone, it answers with the wrong
#: value or none. 「（以下「…」という）」 (a definition) and 「10名以下」 (a bound) are not: 以下 counts only at a
#: sentence's or clause's start.
_POINTS_BELOW = re.compile(r"(?:^|[、。「\s])以下|下記|次の(?:とおり|通り)|:$")

#: Units below the best whose facts are compared with the best's (agreement between passages).
SUPPORT_DEPTH = 8


@dataclass
class Candidate:
    """One answer unit of a retrieved passage."""

    hit: Hit
    hit_no: int
    unit: Unit
    features: np.ndarray
    facts: frozenset[str]  # the facts of the asked-for kinds it states (to compare two units)
    score: float = 0.0
    #: which kinds of fact the unit states beyond the question's own words (knowledge/kinds.py)
    unit_facts: dict[str, bool] = field(default_factory=dict)


def question_words(retrieval: Retrieval) -> list[str]:
    """The question's own words and their synonyms: they are no fact the question asks for."""
    words = {w for w in retrieval.idf if len(w) >= 2}
    words |= {s for w in retrieval.idf for s in retrieval.synonyms.get(w, ())}
    return sorted(words)


def _says(retrieval: Retrieval, word: str, present: frozenset[str]) -> bool:
    return retrieval.covered(word, present) or any(part_of(word, t) for t in present)


def pool(retrieval: Retrieval) -> list[Hit]:
    hits = retrieval.hits[:UNIT_POOL] + retrieval.further
    if retrieval.steered_source is not None:
        # The question names a document: answer from it, not from a similar passage of another call.
        hits = [h for h in hits if h.source.id == retrieval.steered_source] or hits
    # FAQ entries the FAQ retriever found stay candidates even below the pool's cut.
    hits += [h for h in retrieval.hits[UNIT_POOL:] if h.chunk.kind == "faq"][:3]
    # So do the passages one retriever alone ranks among its best, which fusion put below the cut, from
    # any document: steering may have named the wrong one (its `steered_doc` feature tells the ranker).
    seen = {h.chunk.id for h in hits}
    for hit in retrieval.deeper + retrieval.unsteered:
        if hit.chunk.id not in seen:
            seen.add(hit.chunk.id)
            hits.append(hit)
    return hits


def candidates(retrieval: Retrieval, headers: dict[str, tuple[str, ...]] | None = None,
               positions: dict[str, float] | None = None, faq: dict[str, tuple[float, float, float]] | None = None,
               title_keys: dict[int, str] | None = None,
               title_tokens: dict[int, frozenset[str]] | None = None,
               unit_vectors: UnitVectors | None = None) -> list[Candidate]:
    """Every unit of the pooled passages with its feature vector (order of UNIT_FEATURES). `unit_vectors`
    gives each unit's own e5 vector."""
    hits = pool(retrieval)
    if not hits:
        return []
    headers = headers or {}
    positions = positions or {}
    faq = faq or {}
    title_keys = title_keys or {}
    title_tokens = title_tokens or {}
    wanted = asked(retrieval.question)
    wanted_names = [k for k, v in wanted.items() if v]
    words = question_words(retrieval)
    name_only = set("".join(retrieval.name_tokens)) - set("".join(t for t in retrieval.idf
                                                                   if t not in retrieval.name_tokens))
    question_kanji = {c for c in retrieval.question if "\u4e00" <= c <= "\u9fff" and c not in name_only}
    top = max(h.score for h in hits) or 1.0
    bm25_max = max((h.bm25 for h in hits), default=0.0) or 1.0
    dense_max = max((h.dense for h in hits), default=0.0)
    out: list[Candidate] = []
    for hit_no, hit in enumerate(hits):
        chunk = hit.chunk
        header = headers.get(chunk.id)
        units = units_of(chunk.kind, chunk.section, chunk.text, chunk.answer, header)
        section_tokens = units[0].heading_tokens if chunk.kind == "faq" else _section_tokens(chunk.section)
        title = title_keys.get(hit.source.id, "")
        forward, backward, faq_dense = faq.get(chunk.id, (0.0, 0.0, 0.0))
        for unit in units:
            present = unit.tokens | section_tokens
            unit_facts = facts(unit.text, words)
            matched = [name for name in wanted_names if unit_facts[name]]
            cover = bool(title) and normalize(unit.core).replace(" ", "").lstrip("・-●○■◆ ").startswith(title)
            if cover and hit.chunk.kind != "faq":
                # The cover line (title, issuer, date of issue) names the document; its date is when the call
                # was published, the answer to none of the questions people ask.
                continue
            values = {
                "cov_unit": retrieval.coverage(unit.tokens),
                "cov_unit_literal": retrieval.coverage(unit.tokens, literal=True),
                "cov_path": retrieval.coverage(present),
                "cov_heading": retrieval.coverage(unit.heading_tokens | section_tokens),
                "kanji": len(question_kanji & set(unit.text)) / len(question_kanji) if question_kanji else 0.0,
                "prior": max(0.0, hit.score / top),
                "hit_rank": 1.0 / (1 + hit_no),
                "bm25": hit.bm25 / bm25_max,
                "dense": hit.dense,
                "dense_gap": hit.dense - dense_max if hit.dense else -1.0,
                "both_retrievers": 1.0 if hit.bm25_rank is not None and hit.dense_rank is not None else 0.0,
                "steered_doc": 1.0 if retrieval.steered_source == hit.source.id else 0.0,
                "kind_match": 1.0 if matched else 0.0,
                "kind_missing": 1.0 if wanted_names and not matched else 0.0,
                **{f"match_{name}": 1.0 if name in matched else 0.0 for name in KIND_NAMES},
                "is_item": 1.0 if unit.kind == "item" else 0.0,
                "is_list": 1.0 if unit.kind == "list" else 0.0,
                "is_row": 1.0 if unit.kind == "row" else 0.0,
                "is_heading": 1.0 if unit.kind == "heading" else 0.0,
                "is_faq": 1.0 if unit.kind == "faq" else 0.0,
                "doc_position": positions.get(chunk.id, 0.5),
                "unit_position": min(unit.position, 10) / 10,
                "log_len": math.log1p(len(unit.text)) / 6,  # (scales are irrelevant: features are standardized)
                "long": 1.0 if len(unit.text) > LONG_UNIT_CHARS else 0.0,
                "cover": 1.0 if cover else 0.0,
                "faq_forward": forward, "faq_backward": backward, "faq_dense": faq_dense,
                "key_word": 0.0,
                # a unit that restates the document's title (its cover, a subject line) names the document
                "title_share": (len(unit.tokens & title_tokens.get(hit.source.id, frozenset())) / len(unit.tokens)
                                if unit.tokens else 0.0),
                "rel_cov_path": 0.0, "rel_cov_unit": 0.0, "rel_kanji": 0.0, "rel_prior": 0.0,
                "kind_x_cov": 0.0, "kind_x_key": 0.0,
                "unit_dense": 0.0, "rel_unit_dense": 0.0, "unit_dense_rank": 0.0,
                **dict.fromkeys(_CONTEXT, 0.0),
            }
            vector = np.array([values[name] for name in UNIT_FEATURES], dtype=np.float32)
            out.append(Candidate(hit, hit_no, unit, vector,
                                 frozenset(fact_strings(unit.text, wanted_names or list(KIND_NAMES))),
                                 unit_facts=unit_facts))
    # The question's rarest word the units say is what it is about (日当 in 「日当がもらえる条件」).
    said = [t for t in retrieval.idf if t not in retrieval.name_tokens and t not in retrieval.framing
            and any(_says(retrieval, t, c.unit.tokens) for c in out)]
    said = [t for t in said if t in retrieval.nouns] or said
    key = max(said, key=lambda t: retrieval.idf[t]) if said else None
    if key is not None:
        column = UNIT_FEATURES.index("key_word")
        for candidate in out:
            if _says(retrieval, key, candidate.unit.tokens | _section_tokens(candidate.hit.chunk.section)):
                candidate.features[column] = 1.0
    if out:
        matrix = np.vstack([c.features for c in out])
        for name in ("cov_path", "cov_unit", "kanji", "prior"):
            column = _COLUMN[name]
            matrix[:, _COLUMN[f"rel_{name}"]] = matrix[:, column] - matrix[:, column].max()
        matrix[:, _COLUMN["kind_x_cov"]] = matrix[:, _COLUMN["kind_match"]] * matrix[:, _COLUMN["cov_path"]]
        matrix[:, _COLUMN["kind_x_key"]] = matrix[:, _COLUMN["kind_match"]] * matrix[:, _COLUMN["key_word"]]
        if unit_vectors is not None and retrieval.vector:
            dense = unit_vectors.similarity(retrieval.vector, [c.unit.text for c in out])
            matrix[:, _COLUMN["unit_dense"]] = dense
            matrix[:, _COLUMN["rel_unit_dense"]] = dense - dense.max()
            ranks = np.empty(len(dense))
            ranks[np.argsort(-dense, kind="stable")] = np.arange(len(dense))
            matrix[:, _COLUMN["unit_dense_rank"]] = 1.0 / (1.0 + ranks)
        _context(retrieval, out, matrix, wanted_names)
        for candidate, row in zip(out, matrix, strict=True):
            candidate.features = row
    return out


#: BM25's term saturation and length normalization (the usual values) for scoring one unit's words.
BM25_K1, BM25_B = 1.2, 0.75
#: Reciprocal-rank fusion's damping constant over the candidate scorers (the usual 60).
RRF_K = 60


def _ranks(values: np.ndarray) -> np.ndarray:
    """0 for the highest value, 1 for the next, ... (ties keep candidate order)."""
    ranks = np.empty(len(values))
    ranks[np.argsort(-values, kind="stable")] = np.arange(len(values))
    return ranks


def _context(retrieval: Retrieval, out: list[Candidate], matrix: np.ndarray, wanted_names: list[str]) -> None:
    """The features that compare a unit with the question's other candidates: BM25 of the unit alone,
    ranks and their fusion, margins over other passages, the neighbours in its passage, the kind vectors."""
    col = _COLUMN
    total = sum(retrieval.idf.values()) or 1.0
    lengths = np.array([max(1, len(c.unit.tokens)) for c in out], dtype=float)
    average = lengths.mean()
    for i, candidate in enumerate(out):
        present = candidate.unit.tokens
        norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths[i] / average)
        matrix[i, col["bm25_unit"]] = sum(v * (BM25_K1 + 1) / (1 + norm) for t, v in retrieval.idf.items()
                                          if retrieval.covered(t, present)) / total
        matrix[i, col["cov_core"]] = retrieval.coverage(_tokens(candidate.unit.core))
        matrix[i, col["cov_section"]] = retrieval.coverage(_section_tokens(candidate.hit.chunk.section))
        unit_facts = candidate.unit_facts
        for name in KIND_NAMES:
            matrix[i, col[f"ask_{name}"]] = 1.0 if name in wanted_names else 0.0
            matrix[i, col[f"has_{name}"]] = 1.0 if unit_facts.get(name) else 0.0
        if wanted_names:
            matrix[i, col["kind_share"]] = sum(1 for n in wanted_names if unit_facts.get(n)) / len(wanted_names)
    fused = np.zeros(len(out))
    for name in ("cov_path", "cov_unit", "bm25_unit", "unit_dense"):
        ranks = _ranks(matrix[:, col[name]])
        matrix[:, col[f"rank_{name}"]] = 1.0 / (1.0 + ranks)
        fused += 1.0 / (RRF_K + ranks)
    matrix[:, col["rank_fused"]] = fused * RRF_K
    passages = np.array([c.hit_no for c in out])
    for name, margin, inside in (("cov_path", "margin_cov_path", "in_passage_cov"),
                                 ("unit_dense", "margin_unit_dense", "in_passage_dense")):
        values = matrix[:, col[name]]
        for passage in set(passages.tolist()):
            own = passages == passage
            others = values[~own]
            matrix[own, col[margin]] = values[own] - (others.max() if len(others) else 0.0)
            matrix[own, col[inside]] = values[own] - values[own].max()
    for i, candidate in enumerate(out):
        for step, suffix in ((-1, "prev"), (1, "next")):
            j = i + step
            if 0 <= j < len(out) and out[j].hit_no == candidate.hit_no:
                matrix[i, col[f"{suffix}_cov"]] = matrix[j, col["cov_unit"]]
                matrix[i, col[f"{suffix}_dense"]] = matrix[j, col["unit_dense"]]
    matrix[:, col["q_len"]] = math.log1p(len(retrieval.question)) / 5
    matrix[:, col["q_unknown"]] = retrieval.unknown_share


_COLUMN = {name: i for i, name in enumerate(UNIT_FEATURES)}
#: The features _context computes from all of a question's candidates at once.
_CONTEXT = UNIT_FEATURES[UNIT_FEATURES.index("bm25_unit"):]


_section_cache: dict[str, frozenset[str]] = {}


def _section_tokens(section: str) -> frozenset[str]:
    cached = _section_cache.get(section)
    if cached is None:

        cached = _section_cache[section] = _tokens(section)
    return cached


def points_below(unit: Unit) -> bool:
    """A sentence or heading that defers to the lines after it (a list read with its items is whole)."""
    return unit.kind in ("sentence", "heading") and bool(_POINTS_BELOW.search(normalize(unit.core).strip()))


def gate_features(retrieval: Retrieval, ranked: list[Candidate]) -> np.ndarray:
    """Features of the question and of its best unit (`ranked` best first), in GATE_FEATURES order."""
    if not ranked:
        values = dict.fromkeys(GATE_FEATURES, 0.0)
        values["unknown"] = retrieval.unknown_share
        values["margin_other_fact"] = 0.0
        return np.array([values[n] for n in GATE_FEATURES], dtype=np.float32)
    best = ranked[0]
    f = dict(zip(UNIT_FEATURES, best.features.tolist(), strict=True))
    # The margin over the best unit that states another fact (「6月19日」 against 「3月18日」), or, when the
    # best states none of the asked-for kinds, over the best unit elsewhere (another passage).
    rivals = [c.score for c in ranked[1:]
              if (c.facts and best.facts and not (c.facts <= best.facts or best.facts <= c.facts))
              or (not best.facts and c.hit.chunk.id != best.hit.chunk.id)]
    margin = best.score - (max(rivals) if rivals else best.score - MARGIN_CAP)
    # Other passages stating the same fact (a guide and its FAQ both say 3回) make the answer likelier.
    others = [c for c in ranked[1:SUPPORT_DEPTH + 1] if c.hit.chunk.id != best.hit.chunk.id]
    support = sum(1 for c in others if best.facts and c.facts & best.facts) / SUPPORT_DEPTH
    second = next((c.score for c in ranked[1:] if c.unit.text != best.unit.text), best.score - MARGIN_CAP)
    distinct: dict[str, float] = {}
    for c in ranked:
        distinct[c.unit.text] = max(distinct.get(c.unit.text, -1e9), c.score)
    prob = 1.0 / sum(math.exp(min(50.0, v - best.score)) for v in distinct.values())
    hits = retrieval.hits
    values = {
        "top_score": best.score, "margin_other_fact": min(margin, MARGIN_CAP), "top_prob": prob,
        "cov_unit": f["cov_unit"], "cov_path": f["cov_path"], "cov_heading": f["cov_heading"],
        "key_word": f["key_word"], "kind_match": f["kind_match"], "kind_missing": f["kind_missing"],
        "dense": f["dense"], "max_dense": max((h.dense for h in hits[:5]), default=0.0),
        "both_retrievers": f["both_retrievers"], "is_faq": f["is_faq"], "faq_forward": f["faq_forward"],
        "faq_backward": f["faq_backward"], "faq_dense": f["faq_dense"], "unknown": retrieval.unknown_share,
        "asks_kind": 1.0 if any(asked(retrieval.question).values()) else 0.0,
        "steered": 1.0 if retrieval.steered_source is not None else 0.0,
        "top_bm25": math.log1p(max((h.bm25 for h in hits[:5]), default=0.0)) / 4,
        "sources_top5": len({h.source.id for h in hits[:5]}) / 5,
        "support": support, "gap_second": min(best.score - second, MARGIN_CAP),
        "unit_dense": f["unit_dense"],
        "unit_dense_margin": f["unit_dense"] - max((c.features[_COLUMN["unit_dense"]] for c in ranked[1:]
                                                    if c.unit.text != best.unit.text), default=0.0),
        **{name: f[name] for name in ("rank_fused", "rank_cov_path", "rank_unit_dense", "rank_bm25_unit",
                                      "margin_cov_path", "margin_unit_dense", "bm25_unit", "cov_core",
                                      "kind_share", "q_len")},
        # the ranker's margin over the best unit of another passage
        "margin_passage": min(best.score - max((c.score for c in ranked[1:] if c.hit.chunk.id != best.hit.chunk.id),
                                               default=best.score - MARGIN_CAP), MARGIN_CAP),
        "points_below": 1.0 if points_below(best.unit) else 0.0,
    }
    return np.array([values[n] for n in GATE_FEATURES], dtype=np.float32)
