"""FAQ question matching: which FAQ entry, if any, a question asks (one stage, one interface: `match`).

A curated FAQ entry (sample_kb/expert-dispatch-faq.yaml) or a staff-published one (knowledge/faq_review.py)
answers a question asked in other words when the two questions ask the same thing, and only then:
「ホテル代って出る？」 asks 「宿泊費はいくらまで出ますか？」, but 「ホテルのキャンセル料も出ますか」 asks
something that entry does not say. For a question, every FAQ entry of the index searched (the program's
entries and the shared ones: a program's index holds only those) is scored by
- e5 similarity of the two questions, both embedded as queries ("query: " on both sides: two questions
  are alike as questions, not as a question and its passage); an entry's vector is kept by content hash
  in the embedding cache table (knowledge/unit_vectors.py), computed at ingest and so at publish;
- e5 similarity of the question to the entry's answer (the answer unit's passage vector);
- lexical similarity over Sudachi normalized tokens with sudachidict synonyms: the share of the question's
  words (by idf) the entry's question says, of the entry's question's words the question says, and of the
  question's words that neither the entry's question nor its answer says (what a near miss asks about);
- the largest single word of the question (its idf share) that the entry says nowhere, neither in its
  question nor its answer, even by a synonym (「朝食」 in 「ホテルの朝食代も出る？」), and the share of the
  question the answer alone says;
- BM25 of the question against the entry's question and against its answer (with synonyms, as a share of
  what an entry of average length saying every word would score);
- whether the question asks for a kind of fact (an amount, a time, a rate: 「1時間いくら」) the answer states
  none of or states one of, or a number of a unit (「何人」) the answer states no number of or states, and
  whether the two questions ask for the same kinds (「何泊まで」 is a count, 「いくらまで」 an amount);
- each similarity against the best other entry (the margin).
The share of the question's words the index never uses is no feature: it depends on how large the index
is (a program's FAQ alone, or its manuals too), so it would not carry from the indexes trained on.
A logistic gate over these features (knowledge/model.py's Gate), calibrated by isotonic regression on
out-of-fold predictions, gives the probability that the best entry's answer answers the question. It is
trained on the labeled bank leaving whole FAQ entries out, and on the bank's questions of each document
paired with the passages that answer them (an entry made of one question and its answer unit, matched by
the other questions answered there, and refused by the document's other and out-of-scope questions),
leaving whole documents out: so it is measured on entries it never saw, as the next program's FAQ will be
(benchmarks/faq_match_eval.py, which writes knowledge/models/faq_match.json).
"""

from __future__ import annotations

import json
import re
import threading
import weakref
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from langchain_core.embeddings import Embeddings
from sqlalchemy import select

from bot.storage.db import Database
from bot.storage.models import KnowledgeChunk, KnowledgeSource

from knowledge.embeddings import embeddings_name
from knowledge.features import Candidate
from knowledge.kinds import ASKS_NUMBER, asked, asks_rate, counter_pattern, facts, states_rate
from knowledge.model import Gate, _gate_from, _gate_json
from knowledge.synonyms import synonym_groups
from knowledge.tokenize import tokens
from knowledge.unit_vectors import UnitVectors
from knowledge.units import Unit, units_of

from knowledge.retrieval import Hit

if TYPE_CHECKING:
    from knowledge.retrieval import HybridIndex, IndexedChunk, Retrieval

GATE_PATH = Path(__file__).with_name("models") / "faq_match.json"

FAQ_MATCH_FEATURES = (
    "q_dense", "a_dense", "forward", "backward", "said_by_entry", "uncovered_max", "answer_cover", "kind_missing",
    "counter_missing", "kind_agree", "retrieved", "bm25_q", "bm25_a", "kind_stated", "counter_stated",
    "q_dense_margin", "a_dense_margin", "forward_margin", "backward_margin", "said_margin",
    "bm25_q_margin", "bm25_a_margin",
)
#: The features compared with the best other entry (each gives a `<name>_margin` feature).
_MARGINS = ("q_dense", "a_dense", "forward", "backward", "said_by_entry", "bm25_q", "bm25_a")
#: BM25's usual constants (Robertson's k1 and b), not tuned: how fast a word's repetition saturates, and
#: how much a long entry question or answer is discounted for saying many things.
BM25_K1 = 1.2
BM25_B = 0.75
#: A margin when the index holds one entry only: the largest margin the bank's entries show is about this
#: (e5 cosines of two questions lie in 0.7-1.0, lexical shares in 0-1); a lone entry is no better matched
#: for being alone, so its margins are capped at what a clearly best entry has.
LONE_MARGIN = 0.3


@dataclass(frozen=True)
class FaqEntry:
    """One FAQ entry of an index: its question, its answer and their words."""

    chunk: IndexedChunk | None  # its passage (of a training entry: the passage its answer unit stands in)
    question: str
    answer: str  # the answer unit's text (what is shown, and whose passage vector is kept)
    question_tokens: frozenset[str]
    said_tokens: frozenset[str]  # of its question and answer
    answer_tokens: frozenset[str]
    kinds: frozenset[str]  # the kinds of fact its question asks for (knowledge/kinds.py), but yes/no


@dataclass
class FaqMatch:
    """The best-matching entry of a question, with the gate's probability that its answer answers it."""

    entry: FaqEntry
    probability: float
    confident: bool
    features: dict[str, float]

    @property
    def closest(self) -> bool:
        """The entry is clearly the closest to the question of all entries, though maybe no answer to it."""
        return self.features.get("score_margin", 0.0) >= CLOSEST_MARGIN and self.probability >= CLOSEST_PROBABILITY


class _AsQueries(Embeddings):
    """An embedder whose "documents" are embedded as queries: the FAQ entries' questions."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.model_name = f"{embeddings_name(inner)}+query"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.inner.embed_query(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


_lock = threading.Lock()
_question_vectors: dict[tuple[int, str], UnitVectors] = {}
_entries: weakref.WeakKeyDictionary[HybridIndex, list[FaqEntry]] = weakref.WeakKeyDictionary()


def question_vectors(unit_vectors: UnitVectors) -> UnitVectors:
    """The FAQ questions' query vectors, kept by content hash beside the units' passage vectors (one per
    database and embedder)."""
    key = (id(unit_vectors.db), unit_vectors.model)
    with _lock:
        found = _question_vectors.get(key)
        if found is None or found.db is not unit_vectors.db:
            found = _question_vectors[key] = UnitVectors(unit_vectors.db, _AsQueries(unit_vectors.embeddings))
        return found


def faq_questions(db: Database, path: str) -> list[str]:
    """The questions of a stored source's FAQ entries (ingest keeps their query vectors)."""
    with db.session() as session:
        rows = session.execute(select(KnowledgeChunk.kind, KnowledgeChunk.section, KnowledgeChunk.text,
                                      KnowledgeChunk.answer).join(KnowledgeSource)
                               .where(KnowledgeSource.path == path, KnowledgeChunk.kind == "faq")).all()
    return [units_of(kind, section, text, answer)[0].question or "" for kind, section, text, answer in rows]


def entry_of(chunk: IndexedChunk) -> FaqEntry:
    unit = units_of(chunk.kind, chunk.section, chunk.text, chunk.answer)[0]
    return entry(unit.question or "", unit, chunk)


def entry(question: str, answer: Unit, chunk: IndexedChunk | None = None) -> FaqEntry:
    """An entry asking `question`, answered by the unit `answer` (its section is no word of its own: every
    entry under 「謝金・旅費」 would say 謝金)."""
    asked_words = frozenset(tokens(question))
    return FaqEntry(chunk, question, answer.text, asked_words, asked_words | answer.tokens, answer.tokens,
                    frozenset(_wanted(question)))


def _wanted(question: str) -> list[str]:
    """The kinds of fact a question asks for (knowledge/kinds.py's table, and a rate: 「1時間いくら」), but
    yes/no (every other question has that shape too)."""
    return [name for name, on in asked(question).items() if on and name != "yes_no"] + (
        ["rate"] if asks_rate(question) else [])


def _agreement(wanted: set[str], kinds: frozenset[str]) -> float:
    """How alike the kinds of fact two questions ask for are (Jaccard; 1 when neither asks any)."""
    both = wanted | kinds
    return len(wanted & kinds) / len(both) if both else 1.0


def entries(index: HybridIndex) -> list[FaqEntry]:
    """The FAQ entries of an index snapshot (computed once per snapshot)."""
    with _lock:
        found = _entries.get(index)
    if found is None:
        found = [entry_of(c) for c in index.chunks if c.kind == "faq" and c.answer]
        with _lock:
            _entries[index] = found
    return found


def _groups(words: frozenset[str] | set[str]) -> frozenset[int]:
    return frozenset(g for w in words for g in synonym_groups(w))


def _backward(retrieval: Retrieval, entry: FaqEntry, user_words: set[str], user_groups: frozenset[int]) -> float:
    """Share of the entry question's words (by idf) the user's question says, itself, in another form, by
    the document's other name for it, or by a synonym (a shared sudachidict synonym group)."""
    index = retrieval.index
    total = said = 0.0
    for word in entry.question_tokens:
        weight = index.idf(word) if index is not None else 1.0
        total += weight
        if word in user_words or synonym_groups(word) & user_groups:
            said += weight
    return said / total if total else 0.0


def _uncovered_max(retrieval: Retrieval, said: frozenset[str]) -> float:
    """The idf share of the question's weightiest word the entry says nowhere (nor by another form, name
    or synonym); words that only frame the question (方法, 条件) or name the program are no topic."""
    total = sum(retrieval.idf.values())
    skip = retrieval.framing | retrieval.name_tokens
    missing = [v for t, v in retrieval.idf.items() if t not in skip and not retrieval.covered(t, said)]
    return max(missing) / total if missing and total > 0 else 0.0


#: 「何泊」「何人」「何時間」 ask a number of that unit (the counters are knowledge/kinds.py's table).
_ASKED_COUNTER = re.compile(ASKS_NUMBER + counter_pattern())
_NUMBER = r"[0-9０-９][0-9０-９,，.]*\s*|[一二三四五六七八九十百千]+"


def _counter_missing(counters: set[str], answer: str) -> float:
    """1 when the question asks a number of some unit (「何人まで」) and the answer states no number of that
    unit (its 「3回まで」 is a number of another), 0 otherwise: the entry then answers another count."""
    if not counters:
        return 0.0
    return 0.0 if any(re.search(f"(?:{_NUMBER}){re.escape(c)}", answer) for c in counters) else 1.0


def _retrieved(retrieval: Retrieval, entry: FaqEntry) -> float:
    """How the retrievers rank the entry's passage against other documents': 1 / (1 + the passages of other
    sources ranked above it), 0 when they did not bring it. A question another document answers better
    (「アドバイザリーボードの専門家の謝金」 beside the 謝金 entry) finds that document's passages first."""
    chunk = entry.chunk
    if chunk is None:
        return 0.0
    above = 0
    for hit in retrieval.hits:
        if hit.chunk.id == chunk.id:
            return 1.0 / (1 + above)
        above += hit.chunk.source_id != chunk.source_id
    return 0.0


def _bm25(retrieval: Retrieval, words: frozenset[str], average: float) -> float:
    """BM25 of the question against an entry's question or answer (its words, each once; a word of the question
    counts when said in any form, by the document's other name or by a synonym), as a share of what an
    entry of average length saying every word of the question would score: so it reads alike for a short
    question and a long one, and a long answer that says the words among many others scores less."""
    total = sum(retrieval.idf.values())
    if total <= 0 or not words:
        return 0.0
    norm = BM25_K1 * (1 - BM25_B + BM25_B * len(words) / (average or 1.0))
    found = sum(v for t, v in retrieval.idf.items() if retrieval.covered(t, words))
    return found * (1 + BM25_K1) / (1 + norm) / total


def _user_words(retrieval: Retrieval) -> set[str]:
    words = set(retrieval.idf)
    for table in (retrieval.synonyms, retrieval.variants, retrieval.alternatives):
        for found in table.values():
            words |= found
    return words


def _similarities(retrieval: Retrieval, found: list[FaqEntry]) -> tuple[np.ndarray, np.ndarray]:
    """e5 cosine of the question with each entry's question (both as queries) and with its answer."""
    index = retrieval.index
    query = retrieval.vector or (index.query_vector(retrieval.question) if index is not None else [])
    if not query or index is None:
        return np.zeros(len(found)), np.zeros(len(found))
    q = np.asarray(query, dtype=np.float32)
    q = q / (float(np.linalg.norm(q)) or 1.0)
    units = index.unit_vectors
    if units is None:  # an index built without the knowledge base (tests of other stages): no cache
        question_v = [np.asarray(index.embeddings.embed_query(e.question), dtype=np.float32) for e in found]
        answer_v = [np.asarray(v, dtype=np.float32)
                    for v in index.embeddings.embed_documents([e.answer for e in found])]
    else:
        by_question = question_vectors(units).vectors(e.question for e in found)
        by_answer = units.vectors(e.answer for e in found)
        question_v = [by_question[e.question] for e in found]
        answer_v = [by_answer[e.answer] for e in found]

    def cosines(vectors: list[np.ndarray]) -> np.ndarray:
        return np.array([float(v @ q) / (float(np.linalg.norm(v)) or 1.0) for v in vectors])

    return cosines(question_v), cosines(answer_v)


def pair_features(retrieval: Retrieval, found: list[FaqEntry] | None = None) -> tuple[list[FaqEntry], np.ndarray]:
    """Every FAQ entry of the index searched (or the entries given), with its features against the
    question (FAQ_MATCH_FEATURES order, one row an entry)."""
    index = retrieval.index
    if found is None:
        found = entries(index) if index is not None else []
    if not found:
        return [], np.zeros((0, len(FAQ_MATCH_FEATURES)))
    q_dense, a_dense = _similarities(retrieval, found)
    user_words = _user_words(retrieval)
    user_groups = _groups(set(retrieval.idf))
    wanted = _wanted(retrieval.question)
    counters = {m.group(1) for m in _ASKED_COUNTER.finditer(retrieval.question)}
    average_q = float(np.mean([len(e.question_tokens) for e in found]))
    average_a = float(np.mean([len(e.answer_tokens) for e in found]))
    rows = []
    for e, qd, ad in zip(found, q_dense, a_dense, strict=True):
        stated = {**facts(e.answer, list(retrieval.idf)), "rate": states_rate(e.answer)} if wanted else {}
        counter_missing = _counter_missing(counters, e.answer)
        rows.append({
            "q_dense": qd, "a_dense": ad,
            "forward": retrieval.coverage(e.question_tokens),
            "backward": _backward(retrieval, e, user_words, user_groups),
            "said_by_entry": retrieval.coverage(e.said_tokens),
            "uncovered_max": _uncovered_max(retrieval, e.said_tokens),
            "answer_cover": retrieval.coverage(e.answer_tokens),
            "kind_missing": 1.0 if wanted and not any(stated[name] for name in wanted) else 0.0,
            "counter_missing": counter_missing,
            "kind_agree": _agreement(set(wanted), e.kinds),
            "retrieved": _retrieved(retrieval, e),
            "bm25_q": _bm25(retrieval, e.question_tokens, average_q),
            "bm25_a": _bm25(retrieval, e.answer_tokens, average_a),
            # the answer states a fact of a kind asked (「いくら」 and 「1時間あたり5,280円」), a number of the unit
            # asked: the positive side of kind_missing and counter_missing (0 for both when nothing is asked)
            "kind_stated": 1.0 if wanted and any(stated[name] for name in wanted) else 0.0,
            "counter_stated": 1.0 if counters and not counter_missing else 0.0,
        })
    for name in _MARGINS:
        values = np.array([row[name] for row in rows])
        for i, row in enumerate(rows):
            others = np.delete(values, i)
            row[f"{name.removesuffix('_by_entry')}_margin"] = (
                min(LONE_MARGIN, values[i] - others.max()) if len(others) else LONE_MARGIN)
    return found, np.array([[row[name] for name in FAQ_MATCH_FEATURES] for row in rows], dtype=np.float64)


#: The gate's features: the best entry's, with the scorer's score of it and its margin over the next entry.
GATE_FEATURES = (*FAQ_MATCH_FEATURES, "score", "score_margin")


#: The scorer's log-odds margin of a lone entry, and the most a margin counts: beyond a few units of
#: log-odds the best entry is clearly the best, and one outlier would dominate the gate's fit.
LONE_LOGIT_MARGIN = 3.0
#: The scorer's log-odds margin over the next entry at which the best entry is clearly the one closest to
#: the question (its odds e times the next's): an unsure reply then quotes it first ...
CLOSEST_MARGIN = 1.0
#: ... when the gate gives it at least odds of 1 to 3 of answering the question (calibrated out of fold):
#: below that, the isotonic steps hold mostly questions about other topics and programs, whose closest
#: entry is merely the least far.
CLOSEST_PROBABILITY = 0.25


def logit(gate: Gate, x: np.ndarray) -> np.ndarray:
    """A logistic model's log-odds (before its sigmoid)."""
    return ((np.atleast_2d(x) - gate.mean) / gate.scale) @ gate.weights + gate.bias


@dataclass
class FaqModel:
    """Two small learned stages: a scorer of (question, entry) pairs that picks the entry, and the gate
    that decides whether the picked entry's answer answers the question (calibrated out of fold)."""

    scorer: Gate  # a logistic model over FAQ_MATCH_FEATURES (its isotonic calibration is unused)
    gate: Gate  # over GATE_FEATURES
    trained_on: str = ""

    def best(self, x: np.ndarray) -> tuple[int, np.ndarray]:
        """The best entry of a question's pair rows, and the gate's features of it."""
        return self.best_of(self.scorer, x)

    @staticmethod
    def best_of(scorer: Gate, x: np.ndarray) -> tuple[int, np.ndarray]:
        """The best entry by `scorer` and the gate's features of it. Entries are compared by the scorer's
        log-odds: its probabilities saturate near 1 for every entry on the question's topic."""
        scores = logit(scorer, x)
        best = int(np.argmax(scores))
        others = np.delete(scores, best)
        margin = min(LONE_LOGIT_MARGIN, float(scores[best] - others.max())) if len(others) else LONE_LOGIT_MARGIN
        return best, np.concatenate([x[best], [scores[best], margin]])

    def to_json(self) -> dict:
        return {"trained_on": self.trained_on, "scorer": _gate_json(self.scorer), "gate": _gate_json(self.gate)}


@lru_cache(maxsize=4)
def load_model(path: Path = GATE_PATH) -> FaqModel | None:
    """The shipped FAQ model (None when there is none: then no FAQ entry answers by this stage)."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    model = FaqModel(_gate_from(data["scorer"]), _gate_from(data["gate"]), data.get("trained_on", ""))
    if model.scorer.names != FAQ_MATCH_FEATURES or model.gate.names != GATE_FEATURES:
        raise ValueError(f"{path} was trained on other features; retrain it (benchmarks/faq_match_eval.py --train)")
    return model


def save_model(model: FaqModel, path: Path = GATE_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(model.to_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def match(retrieval: Retrieval, model: FaqModel | None = None) -> FaqMatch | None:
    """The FAQ entry the question asks (the best one, with the gate's probability and decision), or None
    when the index holds no FAQ entry or no model is trained."""
    model = model or load_model()
    found, x = pair_features(retrieval)
    if model is None or not found:
        return None
    best, gate_x = model.best(x)
    return FaqMatch(found[best], float(model.gate.probability(gate_x)[0]), bool(model.gate.confident(gate_x)[0]),
                    dict(zip(GATE_FEATURES, (round(float(v), 4) for v in gate_x), strict=True)))


def faq_hit(retrieval: Retrieval, found: FaqMatch) -> Hit:
    """The matched entry as a retrieved passage (to cite it): the retrievers' hit when they found it."""
    chunk = found.entry.chunk
    assert chunk is not None  # an index's entry has its passage
    hit = next((h for h in retrieval.hits if h.chunk.id == chunk.id), None)
    if hit is not None:
        return hit
    index = retrieval.index
    assert index is not None  # an entry comes from the index searched
    return Hit(chunk=chunk, source=index.sources[chunk.source_id], score=found.probability)


def closest_first(retrieval: Retrieval, found: FaqMatch, ranked: list[Candidate]) -> list[Candidate]:
    """The ranked answer units with the clearly closest FAQ entry first (an unsure reply quotes it first:
    the entry a person would look up), rated as the best unit so the next one is still weighed against
    the best; the entry is added when the retrievers did not bring it."""
    if not found.closest or not ranked:
        return ranked
    chunk = found.entry.chunk
    assert chunk is not None  # an index's entry has its passage
    mine = next((c for c in ranked if c.hit.chunk.id == chunk.id), None)
    if mine is None:
        mine = Candidate(faq_hit(retrieval, found), 0, units_of(chunk.kind, chunk.section, chunk.text, chunk.answer)[0],
                         np.zeros_like(ranked[0].features), frozenset())
    mine.score = max(mine.score, ranked[0].score)
    return [mine] + [c for c in ranked if c is not mine]
