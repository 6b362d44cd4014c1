"""Hybrid retrieval: BM25 over Sudachi tokens + e5 vectors in Chroma, fused.

Lexical matching finds the exact terms these documents are full of (謝金,
日当, 事業区分B); the dense side finds paraphrases. The two are fused by a
weighted sum of normalized scores (see `search`; reciprocal rank fusion was
measured too and lost: docs/BENCHMARKS.md).
A question that names a program or document (「九州」「推進体制構築支援」) is
steered to that document: each document has a profile (title, file name,
headings), and a clear profile match puts that document's passages first.
A question is also expanded with the names the document defines for itself
(knowledge/aliases.py): 「事務局」 also searches 「株式会社NTTデータ経営研究所」.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Set
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from langchain_core.embeddings import Embeddings

from bot.text import normalize
from knowledge.aliases import Definition, definitions_in
from knowledge import kinds
from knowledge.kinds import Kind
from knowledge.inflection import VariantIndex
from knowledge.synonyms import SynonymIndex
from knowledge.tokenize import colloquial_topic, content_morphemes, surface_split, tokens
from knowledge.vectorstore import VectorStore
from knowledge.edition import fiscal_years_said, program_name, read_edition
from knowledge.units import header_before

if TYPE_CHECKING:
    import bm25s

    from knowledge.unit_vectors import UnitVectors


def _bm25() -> bm25s.BM25:
    """A new BM25 index. bm25s (and scipy under it) is imported here, when an index is built, not with this
    module: `knowledge ingest` of unchanged files imports this module for its constants and would pay ~0.1 s."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG on import
    return bm25s.BM25()

#: Candidates each retriever proposes: the answer's passage is among them for most questions, and fusing 80
#: candidates costs a few ms (set by hand in the first version).
CANDIDATES = 40
#: More lexical candidates from the document the question names: its answer may rank below 40 passages of
#: other documents that say the question's common words more often.
STEERED_CANDIDATES = 25
#: BM25's share of the fused score: the manuals' own terms (謝金, 事業区分B) are the surest match, the dense side
#: adds paraphrases (set by hand in the first version).
LEXICAL_WEIGHT = 0.6
#: Added to the fused score of a passage that holds the kind of fact asked for (a date for 「いつ」): small
#: against the fused score's range (0-1.15), it orders passages about the topic, never lifts one that is not.
KIND_BONUS = 0.1
#: Weight of the share of the question's idf mass a passage covers, added to the fused score: BM25 lets a common
#: word said often outweigh the rare word the question is about (measured in: docs/BENCHMARKS.md, idf coverage).
COVERAGE_WEIGHT = 0.15
#: Characters of a document's title a question must quote, as one run, to name that document (shorter runs,
#: 事業 or 支援事業, are in every title).
TITLE_PHRASE_CHARS = 5
#: A heading phrase must be longer than a title phrase to name a document: headings share more words.
HEADING_PHRASE_CHARS = 7
#: A profile match steers only when it is clear: at least one rare title word (idf ~1.2 among a handful of
#: documents), and half as much again as the next document's, plus a margin for a near-zero second.
STEER_MIN_SCORE = 1.2
STEER_LEAD = 1.5
STEER_MARGIN = 0.3
#: Share of its idf a word counts for when it only names the document the question is about: it rarely says
#: the topic, but may (「専門家派遣システム」 is a system's name).
NAME_WORD_WEIGHT = 0.25


#: Passages of the fused ranking by score alone (without the steered document first) that stay candidates when
#: a question is steered by its words alone (`steer`): that names the wrong document for 99 of the 243 bank
#: questions it steers (a phrase of a title, `named_in_text`, for 14 of 388), and then hides every passage of
#: the right one (benchmarks/recall_eval.py, docs/BENCHMARKS.md "Recall").
UNSTEERED_CANDIDATES = 3
#: Passages of the fused ranking whose answer units the learned ranker reads (the search's top k, 12, and the
#: next ones down to this depth; the classic answerer reads the top k only; docs/BENCHMARKS.md "Recall").
POOL_PASSAGES = 12


@dataclass(frozen=True)
class RetrievalOptions:
    """Which retrievers run and how they are fused: each stage can be removed or swapped to measure it
    (benchmarks/knowledge_eval.py --ablation)."""

    bm25: bool = True
    dense: bool = True
    faq: bool = True
    fusion: str = "weighted"  # weighted | rrf
    #: keep the passages one retriever alone ranks high below the fused cut (`Retrieval.deeper`): off, as
    #: they raise the gold span in the top 3 units (63.2-63.4% -> 65.6%) but lower the gate's precision on a
    #: new document (mean 91.8-94.0% -> 90.3%, worst fold 85.5-87.9% -> 82.9%; docs/BENCHMARKS.md)
    deep: bool = False
    #: passages kept whatever the steer: the best of the fused ranking without the named document first
    #: (`Retrieval.unsteered`); 0 removes them (the ablation)
    unsteered: int = UNSTEERED_CANDIDATES
    #: the depth of the fused ranking the learned pipeline's answer units come from (`Retrieval.further`)
    pool: int = POOL_PASSAGES

    @classmethod
    def for_pipeline(cls, pipeline: str) -> RetrievalOptions:
        """The classic answerer (`MADOGUCHI_KNOWLEDGE__PIPELINE=classic`) searches without the FAQ retriever."""
        return cls(faq=False) if pipeline == "classic" else cls()


#: Query vectors an index keeps (one embedding serves both searches of a question and its repeats).
QUERY_VECTORS_KEPT = 256
#: Passages of a document read for its edition (its cover and the call's summary come first).
EDITION_PASSAGES = 60
#: A passage below the fused top k is kept in `Retrieval.deeper` when BM25 or the dense retriever ranks it
#: within this many: for about 5% of the bank's questions the gold passage is such a one (docs/BENCHMARKS.md).
DEEP_RANK = 3
#: Reciprocal rank fusion's damping constant (the usual 60, from the RRF paper; RRF is only an ablation here).
RRF_K = 60
#: FAQ entries the FAQ retriever adds to the candidates, best question match first (a paraphrase rarely matches
#: more than one entry; more would crowd out passages).
FAQ_CANDIDATES = 3
#: An entry's fused score from its question match: e5 cosines of two Japanese questions on one topic sit
#: above ~0.75 (unrelated ones below), so the excess over it counts, twice, plus half the words said.
FAQ_SIMILARITY_FLOOR = 0.75
FAQ_SIMILARITY_WEIGHT = 2.0
FAQ_WORDS_WEIGHT = 0.5


@dataclass(frozen=True)
class IndexedChunk:
    id: str
    source_id: int
    kind: str
    section: str
    page: int | None
    text: str
    answer: str | None
    tokens: tuple[str, ...]


@dataclass(frozen=True)
class SourceInfo:
    id: int
    name: str
    title: str
    path: str


@dataclass
class Hit:
    chunk: IndexedChunk
    source: SourceInfo
    score: float
    bm25: float = 0.0
    dense: float = 0.0
    bm25_rank: int | None = None
    dense_rank: int | None = None


@dataclass
class Retrieval:
    question: str
    query_tokens: list[str]
    hits: list[Hit]
    #: idf of each query token over chunks (unknown tokens get the maximum).
    idf: dict[str, float] = field(default_factory=dict)
    #: share of the query's idf mass made of words the corpus never uses.
    unknown_share: float = 0.0
    steered_source: int | None = None
    #: query words that only name the steered document (「九州経済産業局の…事業」): not the topic.
    name_tokens: set[str] = field(default_factory=set)
    #: the document's own definitions the question uses (either name).
    definitions: list[Definition] = field(default_factory=list)
    #: query token -> tokens of the other name of the same thing (a query word is matched by either).
    alternatives: dict[str, set[str]] = field(default_factory=dict)
    #: query token -> the corpus words in its Sudachi synonym groups (ホテル代 -> {宿泊費}, 住む -> {在住}).
    synonyms: dict[str, set[str]] = field(default_factory=dict)
    #: query token -> the corpus's other form of the same word (申し込む -> {申し込み}): it is that word.
    variants: dict[str, set[str]] = field(default_factory=dict)
    #: query words that only say what kind of answer is wanted (方法, 条件): see kinds.cue_words.
    framing: set[str] = field(default_factory=set)
    #: query words that are nouns: what the question is about (its verbs say what is done with it)
    nouns: set[str] = field(default_factory=set)
    #: the first kind of fact the question asks for in the general table (knowledge/kinds.py)
    kind: Kind | None = None
    #: curated FAQ entries the FAQ retriever scored: chunk id -> (forward, backward, question similarity)
    faq: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    #: passages below the fused top k that one retriever alone ranks among its best (DEEP_RANK): the learned
    #: pipeline's answer units come from these too (fusion drops a passage BM25 ranks first when dense does
    #: not find it); the classic answerer reads `hits` only
    deeper: list[Hit] = field(default_factory=list, repr=False)
    #: when the question is steered to a document by its words alone: the best passages by fused score alone,
    #: whatever their document (that steer is often wrong); pooled by the learned pipeline, not by the classic one
    unsteered: list[Hit] = field(default_factory=list, repr=False)
    #: the passages of the fused ranking below the top k down to RetrievalOptions.pool: the learned pipeline's
    #: answer units come from these too
    further: list[Hit] = field(default_factory=list, repr=False)
    #: the question's e5 query vector (empty when no dense stage ran): the learned ranker compares it with
    #: each answer unit's own vector
    vector: list[float] = field(default_factory=list, repr=False, compare=False)
    #: the index snapshot searched (its passages' layout and the sources' editions)
    index: HybridIndex | None = field(default=None, repr=False, compare=False)

    def said(self, token: str, present: Set[str]) -> bool:
        """The query word itself, in any form (申し込む / 申し込み), is among `present`."""
        return token in present or bool(self.variants.get(token, set()) & present)

    def covered(self, token: str, present: Set[str]) -> bool:
        """The query word in any form, the other name it has in the document, or a synonym is among
        `present`."""
        return (self.said(token, present) or bool(self.alternatives.get(token, set()) & present)
                or bool(self.synonyms.get(token, set()) & present))

    def coverage(self, present: Set[str], literal: bool = False) -> float:
        """Share of the question's idf mass whose words (or their other names, or synonyms) are present:
        one measure for ranking passages and for choosing and trusting the answer sentence. `literal`
        counts the words themselves only (a curated FAQ question must say what was asked)."""
        total = sum(self.idf.values())
        if total <= 0:
            return 0.0
        match = self.said if literal else self.covered
        return sum(v for t, v in self.idf.items() if match(t, present)) / total


def _longest_run(text: str, other: str) -> str:
    """The longest run of characters of `text` that `other` holds too (the first, of equal ones)."""
    best = ""
    for start in range(len(text)):
        end = start + len(best) + 1
        while end <= len(text) and text[start:end] in other:
            best = text[start:end]
            end += 1
    return best


def _quoted_in(text: str, documents: dict[int, str], min_chars: int) -> tuple[int | None, int]:
    """The one document that holds a longer run of `text` (at least `min_chars`) that no other holds,
    and the run's length."""
    longest: dict[int, int] = {}
    for sid, own in documents.items():
        others = [t for other, t in documents.items() if other != sid]
        best = 0
        for start in range(len(text)):
            end = start + max(best, min_chars - 1) + 1
            while end <= len(text) and text[start:end] in own:
                if not any(text[start:end] in other for other in others):
                    best = end - start
                end += 1
        longest[sid] = best
    ranked = sorted(longest.items(), key=lambda kv: kv[1], reverse=True)
    if len(ranked) >= 2 and ranked[0][1] >= min_chars and ranked[0][1] > ranked[1][1]:
        return ranked[0]
    return None, 0


#: Characters of a title that recognise its cover line (titles run long and wrap; 12 is past 「令和8年度」).
TITLE_KEY_CHARS = 12


def title_key(title: str) -> str:
    """Enough of a document's title to recognise its cover line."""
    return normalize(title).replace(" ", "")[:TITLE_KEY_CHARS] if len(title) >= TITLE_KEY_CHARS else ""


def part_of(token: str, whole: str) -> bool:
    """`token` is a part of the compound `whole` (Sudachi gives both: 上限 and 額 beside 上限額)."""
    return token != whole and token in whole


def _with_new(words: list[str], extra: Iterable[str]) -> list[str]:
    """`words`, then the words of `extra` not among them (sorted, for a stable query)."""
    return words + sorted(set(extra) - set(words))


def _best_positive(scores: np.ndarray, limit: int) -> list[int]:
    """Indices of the `limit` highest scores, best first, leaving out those that matched nothing."""
    return [int(index) for index in np.argsort(-scores)[:limit] if scores[index] > 0]


class HybridIndex:
    """An immutable snapshot of the corpus for searching; rebuilt after ingest."""

    def __init__(self, chunks: list[IndexedChunk], sources: dict[int, SourceInfo],
                 store: VectorStore, embeddings: Embeddings, options: RetrievalOptions | None = None) -> None:
        self.options = options or RetrievalOptions()
        self.chunks = chunks
        self.sources = sources
        self.store = store
        self.embeddings = embeddings
        #: query vectors of recent questions: the learned pipeline searches twice (its own and the classic
        #: answerer's retrieval, one of its features), and a question costs one embedding
        self._query_vectors: OrderedDict[str, list[float]] = OrderedDict()
        self._vectors_lock = threading.Lock()
        self._with: dict[RetrievalOptions, HybridIndex] = {}
        #: the answer units' own e5 vectors (knowledge/unit_vectors.py), set by the knowledge base
        self.unit_vectors: UnitVectors | None = None
        self.by_id = {c.id: i for i, c in enumerate(chunks)}
        self._source_of = np.array([c.source_id for c in chunks])
        self._token_sets = [frozenset(c.tokens) for c in chunks]
        self.doc_freq: Counter[str] = Counter()
        for token_set in self._token_sets:
            self.doc_freq.update(token_set)
        self.bm25: bm25s.BM25 | None = None
        if chunks:
            self.bm25 = _bm25()
            self.bm25.index([list(c.tokens) or [""] for c in chunks], show_progress=False)
        self._profiles = self._build_profiles()
        self._corpus_text = "".join(normalize(c.text).replace(" ", "").lower() for c in chunks)
        self.synonyms = SynonymIndex(self.doc_freq)
        self.variants = VariantIndex(self.doc_freq)
        self.definitions: dict[int, list[Definition]] = {sid: [] for sid in sources}
        for chunk in chunks:
            self.definitions[chunk.source_id].extend(definitions_in(chunk.text.replace("\n", "")))
        self._layout()
        self._faq_indices = [i for i, c in enumerate(chunks) if c.kind == "faq"]
        self._faq_vectors: np.ndarray | None = None
        self._faq_tokens = [frozenset(tokens(chunks[i].text.split("\nA: ", 1)[0].removeprefix("Q: ")))
                            for i in self._faq_indices]

    def _layout(self) -> None:
        """Per passage: where it stands in its document (0 = start) and the table header in force at its
        start; per document, the start of its title (to recognise the cover line)."""

        self.positions: dict[str, float] = {}
        self.headers: dict[str, tuple[str, ...]] = {}
        by_source: dict[int, list[IndexedChunk]] = {}
        for chunk in self.chunks:
            by_source.setdefault(chunk.source_id, []).append(chunk)
        for own in by_source.values():
            for number, (chunk, header) in enumerate(zip(own, header_before([c.text for c in own]), strict=True)):
                self.positions[chunk.id] = number / max(1, len(own) - 1)
                if header:
                    self.headers[chunk.id] = tuple(header)

        self.editions = {sid: read_edition(source.title, program_name(source.title),
                                           "\n".join(c.text for c in by_source.get(sid, [])[:EDITION_PASSAGES])
                                           .split("\n"),
                                           source.path)
                         for sid, source in self.sources.items()}
        #: each program's name as a question quoting it is compared (normalized, without spaces)
        self._program_names = {normalize(e.program).replace(" ", "") for e in self.editions.values()}
        self.title_tokens = {sid: frozenset(tokens(s.title)) for sid, s in self.sources.items()}
        self.title_keys = {sid: title_key(s.title) for sid, s in self.sources.items()}

    @property
    def corpus_text(self) -> str:
        """All passages' text, normalized, lowercased, without spaces (to look a phrase up)."""
        return self._corpus_text

    # ---------------------------------------------------------------- helpers
    def idf(self, token: str) -> float:
        n = max(len(self.chunks), 1)
        df = self.doc_freq.get(token, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def _build_profiles(self) -> dict[int, set[str]]:
        profiles: dict[int, set[str]] = {sid: set() for sid in self.sources}
        self._title_tokens: dict[int, set[str]] = {}
        self._title_text: dict[int, str] = {}
        for source in self.sources.values():
            stem = source.name.rsplit(".", 1)[0].replace("-", " ").replace("_", " ")
            self._title_tokens[source.id] = set(tokens(f"{source.title} {stem}"))
            self._title_text[source.id] = normalize(source.title).replace(" ", "")
            profiles[source.id].update(self._title_tokens[source.id])
        sections: dict[int, set[str]] = {sid: set() for sid in self.sources}
        for chunk in self.chunks:
            sections[chunk.source_id].add(chunk.section)
        self._heading_text = {sid: normalize(" / ".join(sorted(names))).replace(" ", "")
                              for sid, names in sections.items()}
        for sid, names in sections.items():
            for name in names:
                profiles[sid].update(tokens(name))
        self._profile_df = Counter(t for p in profiles.values() for t in p)
        return profiles

    def query_vector(self, question: str) -> list[float]:
        with self._vectors_lock:
            vector = self._query_vectors.get(question)
        if vector is None:
            vector = self.embeddings.embed_query(question)
            with self._vectors_lock:
                self._query_vectors[question] = vector
                while len(self._query_vectors) > QUERY_VECTORS_KEPT:
                    self._query_vectors.popitem(last=False)
        return vector

    def with_options(self, options: RetrievalOptions) -> HybridIndex:
        """This snapshot searched with other options (the classic answerer's retrieval beside the learned
        one): a shallow copy sharing the passages, statistics and query vectors."""
        if options == self.options:
            return self
        other = self._with.get(options)
        if other is None:
            other = copy.copy(self)
            other.options = options
            other._with = {}
            self._with[options] = other
        return other

    def named_in_text(self, question: str) -> int | None:
        """The one document the question names by a phrase of its title or, if longer, of its headings.

        A title phrase is a run of at least TITLE_PHRASE_CHARS characters found in that title and in no
        other (「推進体制構築支援」, 「人材確保支援」). Words of a title one by one are weak evidence (推進,
        体制, 構築 and 支援 are in every call's headings); the program's name said as a phrase is the
        strongest there is. A longer heading phrase wins over it: 「地域プラットフォーム」 is a heading of
        the dispatch spec, though プラットフォーム alone is a phrase of another document's title.
        """
        return self._named_in(normalize(question).replace(" ", ""))

    def _named_in(self, text: str) -> int | None:
        """`named_in_text` of a question already normalized, without spaces."""
        in_title, title_run = _quoted_in(text, self._title_text, TITLE_PHRASE_CHARS)
        in_headings, heading_run = _quoted_in(text, self._heading_text, HEADING_PHRASE_CHARS)
        if in_headings is not None and heading_run > title_run:
            return in_headings
        return in_title

    def steer(self, query_tokens: list[str]) -> int | None:
        """The one document the question names, if any (a clearly best profile match)."""
        if len(self.sources) < 2:
            return None
        n_docs = len(self.sources)
        df = self._profile_df
        scores = {}
        words = set(query_tokens)
        for sid, profile in self._profiles.items():
            matched = {t for t in words if t in profile}
            # A compound and its parts are one word said once (専門家 = 専門 + 家): count the compound only.
            matched = {t for t in matched if not any(t != other and t in other for other in matched)}
            # A word of the title names the document; a word of a heading only hints at it.
            scores[sid] = sum(math.log(n_docs / df[t]) * (1.0 if t in self._title_tokens[sid] else 0.5)
                              for t in matched)
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
        best, second = ranked[0], ranked[1]
        if best[1] >= STEER_MIN_SCORE and best[1] >= STEER_LEAD * second[1] + STEER_MARGIN:
            return best[0]
        return None

    def _program_name_words(self, text: str, said: Counter[str]) -> set[str]:
        """The words of a program's name the question quotes (a run of at least TITLE_PHRASE_CHARS characters
        of it: 「あおぞら県観光人材育成事業の締切は」): they say which program, not what about, in the program's
        own window too, where there is no other document to steer away from (a title's words count only when
        a document is steered to). `text` is the question normalized, without spaces."""
        words: set[str] = set()
        for name in self._program_names:
            run = _longest_run(text, name)
            if len(run) >= TITLE_PHRASE_CHARS:
                words |= {t for t in tokens(run) if said[t] == 1}
        return words

    def _held_year_words(self, plain: str, said: Counter[str], steered: int | None) -> set[str]:
        """The words of a fiscal year the question names that the sources are (「令和8年度の謝金は」): they say
        which edition is meant, not what about, as a title's words name the document (a year the sources are
        not is declined before any answer: knowledge/edition.py asks_other_edition). `plain` is the question
        normalized."""
        editions = [self.editions[steered]] if steered in self.editions else list(self.editions.values())
        held = {e.fiscal_year for e in editions if e.fiscal_year}
        return {t for year, words in fiscal_years_said(plain) if year in held
                for t in tokens(words) if said[t] == 1}

    def _unseen_phrases(self, question: str) -> list[str]:
        """Runs of nouns the corpus never writes together (「IT導入補助金」, 「補助率」)."""
        runs: list[str] = []
        current: list[str] = []
        for surface, _, pos in surface_split(question) + [("", "", "")]:
            if pos == "名詞":
                current.append(surface)
                continue
            if len(current) >= 2 and len("".join(current)) >= 3:
                runs.append("".join(current))
            current = []
        return [r for r in runs if r.lower() not in self._corpus_text]

    def _unseen_compound(self, token: str, others: list[str]) -> bool:
        """A compound the corpus never writes whole, though it has its parts (上限額 = 上限 + 額)."""
        if self.doc_freq.get(token, 0):
            return False
        parts = [t for t in others if part_of(t, token)]
        return len(parts) >= 2 and sum(len(t) for t in parts) >= len(token)

    def _expand(self, question: str, source_id: int | None) -> tuple[list[Definition], dict[str, set[str]]]:
        """One document's own names for what the question mentions, both ways."""
        if source_id is None:
            return [], {}
        text = normalize(question)
        used: list[Definition] = []
        alternatives: dict[str, set[str]] = {}
        for definition in self.definitions.get(source_id, []):
            for said, other in ((definition.short, definition.long), (definition.long, definition.short)):
                if said in text and other not in text and definition not in used:
                    used.append(definition)
                    other_tokens = set(tokens(other))
                    for token in tokens(said):
                        alternatives.setdefault(token, set()).update(other_tokens)
        return used, alternatives

    # ----------------------------------------------------------------- search
    def _lexical(self, query_tokens: list[str], steered: int | None) -> tuple[np.ndarray, dict[int, int]]:
        """BM25 scores of every chunk and the ranks of the candidates (more of them from the named document)."""
        scores = np.zeros(len(self.chunks))
        ranks: dict[int, int] = {}
        if not query_tokens or self.bm25 is None or not self.options.bm25:
            return scores, ranks
        scores = self.bm25.get_scores(query_tokens)
        ranks = {index: rank for rank, index in enumerate(_best_positive(scores, CANDIDATES))}
        if steered is not None:
            steered_scores = np.where(self._source_of == steered, scores, 0.0)
            for rank, index in enumerate(_best_positive(steered_scores, STEERED_CANDIDATES)):
                ranks.setdefault(index, CANDIDATES + rank)
        return scores, ranks

    def _dense(self, vector: list[float]) -> tuple[dict[int, float], dict[int, int]]:
        similarity: dict[int, float] = {}
        ranks: dict[int, int] = {}
        if not self.options.dense:
            return similarity, ranks
        for rank, hit in enumerate(self.store.query(vector, CANDIDATES)):
            index = self.by_id.get(hit.chunk_id)
            if index is None:  # vector of a chunk removed since this snapshot
                continue
            similarity[index] = hit.similarity
            ranks[index] = rank
        return similarity, ranks

    def _faq(self, vector: list[float], retrieval: Retrieval) -> dict[int, tuple[float, float, float]]:
        """The FAQ retriever: every curated FAQ entry's question against the user's, by dense similarity of
        the two questions (an entry's stored vector is its question's) and by the share of each question's
        words the other says. The best FAQ_CANDIDATES join the candidates."""
        if not self.options.faq or not self._faq_indices:
            return {}
        if self._faq_vectors is None:
            got = self.store.collection.get(ids=[self.chunks[i].id for i in self._faq_indices],
                                            include=["embeddings"])
            by_id = dict(zip(got["ids"], got["embeddings"], strict=True))
            dim = len(vector)
            self._faq_vectors = np.array([by_id.get(self.chunks[i].id, np.zeros(dim)) for i in self._faq_indices],
                                         dtype=np.float32)
        similarity = self._faq_vectors @ np.asarray(vector, dtype=np.float32)
        scored: dict[int, tuple[float, float, float]] = {}
        for position, index in enumerate(self._faq_indices):
            faq_tokens = self._faq_tokens[position]
            forward = retrieval.coverage(faq_tokens, literal=False)
            backward = (sum(1 for t in faq_tokens if retrieval.covered(t, set(retrieval.idf)) or t in retrieval.idf)
                        / len(faq_tokens)) if faq_tokens else 0.0
            scored[index] = (forward, backward, float(similarity[position]))
        best = sorted(scored, key=lambda i: scored[i][2] + FAQ_WORDS_WEIGHT * scored[i][0],
                      reverse=True)[:FAQ_CANDIDATES]
        return {i: scored[i] for i in best}

    def _fuse(self, lexical: tuple[np.ndarray, dict[int, int]], dense: tuple[dict[int, float], dict[int, int]],
              retrieval: Retrieval, k: int) -> list[Hit]:
        """A convex combination of max-normalized BM25 and min-max-normalized cosine over the union of
        both candidate lists, plus the share of the question's idf the passage covers and a bonus when it
        holds the asked-for kind of fact. Unlike RRF it keeps "BM25 found it and dense did not rank it"
        (typical for short table rows like 「契約締結日~令和8年3月31日」) competitive."""
        bm25_scores, bm25_rank = lexical
        dense_sim, dense_rank = dense
        candidates = set(bm25_rank) | set(dense_rank)
        bm25_max = max((bm25_scores[i] for i in candidates), default=0.0) or 1.0
        floor = min(dense_sim.values(), default=0.0)
        span = (max(dense_sim.values(), default=0.0) - floor) or 1.0
        steered = retrieval.steered_source
        kind = retrieval.kind
        faq_ids = {self.by_id[c] for c in retrieval.faq if c in self.by_id}
        candidates |= faq_ids
        hits = []
        for index in candidates:
            lexical_score = float(bm25_scores[index]) / bm25_max
            dense_score = (dense_sim[index] - floor) / span if index in dense_sim else 0.0
            chunk = self.chunks[index]
            if self.options.fusion == "rrf":
                # scaled so its top (rank 0 in both, 2/60) is about the weighted sum's top (1.0)
                score = sum(1.0 / (RRF_K + rank[index]) for rank in (bm25_rank, dense_rank) if index in rank) * RRF_K / 2
            else:
                score = LEXICAL_WEIGHT * lexical_score + (1 - LEXICAL_WEIGHT) * dense_score
            if index in faq_ids:  # the FAQ retriever's own score: how alike the two questions are
                forward, _, similarity = retrieval.faq[chunk.id]
                score = max(score, FAQ_WORDS_WEIGHT * forward
                            + FAQ_SIMILARITY_WEIGHT * max(0.0, similarity - FAQ_SIMILARITY_FLOOR))
            # BM25 lets a common word said many times outweigh the one rare word the question is about
            # (「日当がもらえる条件は？」: 条件 everywhere, 日当 in two passages); idf coverage does not.
            score += COVERAGE_WEIGHT * retrieval.coverage(self._token_sets[index])
            if kind is not None and kind.fact.search(chunk.text):
                score += KIND_BONUS
            hits.append(Hit(chunk=chunk, source=self.sources[chunk.source_id], score=float(score),
                            bm25=float(bm25_scores[index]), dense=dense_sim.get(index, 0.0),
                            bm25_rank=bm25_rank.get(index), dense_rank=dense_rank.get(index)))
        # The document the question names comes first; other documents only fill the remaining places.
        hits.sort(key=lambda h: (steered is not None and h.source.id == steered, h.score), reverse=True)
        # The FAQ entries the FAQ retriever found stay, after the k best passages.
        return hits[:k] + ([h for h in hits[k:] if h.chunk.kind == "faq"] if self.options.faq else [])

    def search(self, question: str, k: int = 12) -> Retrieval:
        question = colloquial_topic(question)
        morphemes = content_morphemes(question)
        query_tokens = [form for form, _ in morphemes]
        # A word the manuals never use may have a synonym they do (ホテル代: 宿泊費, 住む: 在住); a word they
        # use already meets its own passages, and its synonyms would only blur the coverage.
        variants = {t: words for t in query_tokens if (words := self.variants.variants(t))}
        synonyms = {t: words for t in query_tokens if not self.doc_freq.get(t, 0) and t not in variants
                    and (words := self.synonyms.synonyms(t))}
        # A compound the corpus never writes whole but whose parts it has (上限額, 確定申告) is half unknown:
        # it leaves the words to match, and counts for half its weight as a word the manuals do not know.
        compounds = [t for t in query_tokens if t not in synonyms and self._unseen_compound(t, query_tokens)]
        # The other way round, a compound the manuals say in other words (ホテル代: 宿泊費) stands for its
        # parts: ホテル is no topic the manuals lack, and 代 alone would match any passage about fees.
        absorbed = {t for t in query_tokens if any(part_of(t, whole) for whole in synonyms)}
        query_tokens = [t for t in query_tokens if t not in compounds and t not in absorbed]
        plain = normalize(question)  # once, for the helpers that read the question's text
        spaceless = plain.replace(" ", "")
        steered = None
        by_words = False  # steered by the profile's words, not by a phrase of a title or heading
        if self.chunks:
            steered = self._named_in(spaceless)
            if steered is None:
                steered = self.steer(query_tokens)
                by_words = steered is not None
        # Title words name the document, not the topic, unless the question says them again
        # (「後継者支援ネットワーク事業の事業期間」: the second 事業 is part of what is asked).
        said = Counter(query_tokens)
        name_tokens = {t for t in self._title_tokens.get(steered, set()) if said[t] == 1} if steered else set()
        name_tokens |= self._held_year_words(plain, said, steered)
        name_tokens |= self._program_name_words(spaceless, said)
        focus = [t for t in query_tokens if t not in name_tokens] or query_tokens
        # A word the manuals never use stands for its synonyms they do use, and is as telling as they are:
        # 使う (via 使用, 利用) is a common word, not the rarest one of the question.
        all_idf = {t: max(self.idf(w) for w in synonyms[t]) if t in synonyms else self.idf(t)
                   for t in query_tokens}
        compound_idf = 0.5 * sum(self.idf(t) for t in compounds)
        # A word the corpus never uses but has a synonym of is half unknown, like a compound. A word that
        # only says what kind of answer is wanted (方法 in 「申込方法は？」) is no sign of a topic the
        # manuals lack, though a small FAQ may never write it.
        kind = kinds.primary(question)
        framing = set(tokens(kinds.cue_words(question)))
        # A run of nouns the manuals never write together (「IT導入補助金」) names something they may not
        # cover, though each word is theirs: half unknown, like an unseen compound. The words that only
        # frame the question (申込「方法」, 時間「単価」) do not make a phrase of their own.
        phrase_words = [[t for t in tokens(phrase) if t in all_idf and t not in framing]
                        for phrase in self._unseen_phrases(question)]
        phrase_idf = 0.5 * sum(all_idf[t] for words in phrase_words if len(words) >= 2 for t in words)
        # A verb the manuals never use (納める, where they write 納入) says how the question is put, not what
        # about: half unknown, as a word with a synonym is. Topics the manuals lack are nouns (IT導入補助金).
        verbs = {form for form, pos in morphemes if pos == "動詞"}
        unknown = compound_idf + phrase_idf + sum(v * (0.5 if t in synonyms or t in verbs else 1.0)
                                                  for t, v in all_idf.items()
                                                  if self.doc_freq.get(t, 0) == 0 and t not in variants
                                                  and t not in framing)
        total = (sum(all_idf.values()) + compound_idf) or 1.0
        # Words that name the document still count a little: 「専門家派遣システム」 is the name of a system.
        idf = {t: all_idf[t] * (NAME_WORD_WEIGHT if t in name_tokens else 1.0) for t in query_tokens}
        retrieval = Retrieval(question, query_tokens, [], idf, min(1.0, unknown / total) if query_tokens else 1.0,
                              steered, name_tokens, synonyms=synonyms, variants=variants,
                              kind=kind, framing=framing,
                              nouns={form for form, pos in morphemes if pos == "名詞"}, index=self)
        if not self.chunks:
            return retrieval
        vector = self.query_vector(question) if (self.options.dense or self.options.faq) else []
        retrieval.vector = vector
        dense = self._dense(vector)
        retrieval.faq = {self.chunks[i].id: v for i, v in self._faq(vector, retrieval).items()}
        # A word the manuals never use is searched by its synonyms they do use; any word by its other form.
        searched = _with_new(focus, (w for t in focus for w in synonyms.get(t, set()) | variants.get(t, set())))
        ranked = self._fuse(self._lexical(searched, steered), dense, retrieval, len(self.chunks))
        # The question may use a name the document defines for itself: search again with the other name,
        # in the document the question names or, failing that, the one the first search found.
        home = steered if steered is not None else (ranked[0].source.id if ranked else None)
        retrieval.definitions, retrieval.alternatives = self._expand(question, home)
        if retrieval.alternatives:
            expanded = _with_new(searched, (t for alts in retrieval.alternatives.values() for t in alts))
            ranked = self._fuse(self._lexical(expanded, steered), dense, retrieval, len(self.chunks))
        # The FAQ entries the FAQ retriever found stay, after the k best passages.
        retrieval.hits = ranked[:k] + ([h for h in ranked[k:] if h.chunk.kind == "faq"] if self.options.faq else [])
        if by_words and self.options.unsteered:
            by_score = sorted((h for h in ranked if h.chunk.kind != "faq"), key=lambda h: h.score, reverse=True)
            retrieval.unsteered = by_score[: self.options.unsteered]
        retrieval.further = [h for h in ranked[k:self.options.pool] if h.chunk.kind != "faq"]
        retrieval.deeper = [h for h in ranked[k:] if self.options.deep and h.chunk.kind != "faq" and min(
            h.bm25_rank if h.bm25_rank is not None else DEEP_RANK,
            h.dense_rank if h.dense_rank is not None else DEEP_RANK) < DEEP_RANK]
        return retrieval
