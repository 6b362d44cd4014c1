"""Hybrid retrieval: BM25 over Sudachi tokens + e5 vectors in Chroma, fused.

Lexical matching finds the exact terms these documents are full of (謝金,
日当, 事業区分B); the dense side finds paraphrases. The two are fused by a
weighted sum of normalized scores (see `search`; reciprocal rank fusion was
measured too and lost: docs/BENCHMARKS.md).
A question that names a program or document (「九州」「推進体制構築支援」) is
steered to that document: each document has a profile (title, file name,
headings), and a clear profile match multiplies that document's fused scores.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field

import bm25s
import numpy as np
from langchain_core.embeddings import Embeddings

from knowledge.tokenize import tokens
from knowledge.vectorstore import VectorStore

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG on import

CANDIDATES = 40
LEXICAL_WEIGHT = 0.6
STEER_BOOST = 1.5


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


class HybridIndex:
    """An immutable snapshot of the corpus for searching; rebuilt after ingest."""

    def __init__(self, chunks: list[IndexedChunk], sources: dict[int, SourceInfo],
                 store: VectorStore, embeddings: Embeddings) -> None:
        self.chunks = chunks
        self.sources = sources
        self.store = store
        self.embeddings = embeddings
        self.by_id = {c.id: i for i, c in enumerate(chunks)}
        self.doc_freq: Counter[str] = Counter()
        for chunk in chunks:
            self.doc_freq.update(set(chunk.tokens))
        self.bm25: bm25s.BM25 | None = None
        if chunks:
            self.bm25 = bm25s.BM25()
            self.bm25.index([list(c.tokens) or [""] for c in chunks], show_progress=False)
        self._profiles = self._build_profiles()

    # ---------------------------------------------------------------- helpers
    def idf(self, token: str) -> float:
        n = max(len(self.chunks), 1)
        df = self.doc_freq.get(token, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def _build_profiles(self) -> dict[int, set[str]]:
        profiles: dict[int, set[str]] = {sid: set() for sid in self.sources}
        self._title_tokens: dict[int, set[str]] = {}
        for source in self.sources.values():
            stem = source.name.rsplit(".", 1)[0].replace("-", " ").replace("_", " ")
            self._title_tokens[source.id] = set(tokens(f"{source.title} {stem}"))
            profiles[source.id].update(self._title_tokens[source.id])
        sections: dict[int, set[str]] = {sid: set() for sid in self.sources}
        for chunk in self.chunks:
            sections[chunk.source_id].add(chunk.section)
        for sid, names in sections.items():
            for name in names:
                profiles[sid].update(tokens(name))
        self._profile_df = Counter(t for p in profiles.values() for t in p)
        return profiles

    def steer(self, query_tokens: list[str]) -> int | None:
        """The one document the question names, if any (a clearly best profile match)."""
        if len(self.sources) < 2:
            return None
        n_docs = len(self.sources)
        df = self._profile_df
        scores = {}
        for sid, profile in self._profiles.items():
            # A word of the title names the document; a word of a heading only hints at it.
            scores[sid] = sum(math.log(n_docs / df[t]) * (1.0 if t in self._title_tokens[sid] else 0.5)
                              for t in set(query_tokens) if t in profile)
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
        best, second = ranked[0], ranked[1]
        if best[1] >= 1.2 and best[1] >= 1.5 * second[1] + 0.3:
            return best[0]
        return None

    # ----------------------------------------------------------------- search
    def search(self, question: str, k: int = 8) -> Retrieval:
        query_tokens = tokens(question)
        steered = self.steer(query_tokens) if self.chunks else None
        name_tokens = (set(query_tokens) & self._title_tokens.get(steered, set())) if steered else set()
        focus = [t for t in query_tokens if t not in name_tokens] or query_tokens
        all_idf = {t: self.idf(t) for t in query_tokens}
        unknown = sum(v for t, v in all_idf.items() if self.doc_freq.get(t, 0) == 0)
        total = sum(all_idf.values()) or 1.0
        idf = {t: all_idf[t] for t in focus}
        retrieval = Retrieval(question, query_tokens, [], idf, unknown / total if query_tokens else 1.0,
                              steered, name_tokens)
        if not self.chunks:
            return retrieval
        query_tokens = focus

        # Fusion: a convex combination of max-normalized BM25 and min-max-normalized cosine over
        # the union of both candidate lists. Unlike RRF it keeps "BM25 found it and dense did not
        # rank it" (typical for short table rows like 「契約締結日~令和8年3月31日」) competitive.
        bm25_scores = np.zeros(len(self.chunks))
        bm25_rank: dict[int, int] = {}
        if query_tokens and self.bm25 is not None:
            bm25_scores = self.bm25.get_scores(query_tokens)
            for rank, index in enumerate(np.argsort(-bm25_scores)[:CANDIDATES]):
                if bm25_scores[index] <= 0:
                    break
                bm25_rank[int(index)] = rank
        dense_sim: dict[int, float] = {}
        dense_rank: dict[int, int] = {}
        vector = self.embeddings.embed_query(question)
        for rank, hit in enumerate(self.store.query(vector, CANDIDATES)):
            index = self.by_id.get(hit.chunk_id)
            if index is None:  # vector of a chunk removed since this snapshot
                continue
            dense_sim[index] = hit.similarity
            dense_rank[index] = rank
        candidates = set(bm25_rank) | set(dense_rank)
        bm25_max = max((bm25_scores[i] for i in candidates), default=0.0) or 1.0
        floor = min(dense_sim.values(), default=0.0)
        span = (max(dense_sim.values(), default=0.0) - floor) or 1.0
        fused: dict[int, float] = {}
        for index in candidates:
            lexical = float(bm25_scores[index]) / bm25_max
            dense = (dense_sim[index] - floor) / span if index in dense_sim else 0.0
            fused[index] = float(LEXICAL_WEIGHT * lexical + (1 - LEXICAL_WEIGHT) * dense)

        hits = []
        for index, score in fused.items():
            chunk = self.chunks[index]
            if steered is not None and chunk.source_id == steered:
                score *= STEER_BOOST
            hits.append(Hit(chunk=chunk, source=self.sources[chunk.source_id], score=score,
                            bm25=float(bm25_scores[index]), dense=dense_sim.get(index, 0.0),
                            bm25_rank=bm25_rank.get(index), dense_rank=dense_rank.get(index)))
        hits.sort(key=lambda h: h.score, reverse=True)
        retrieval.hits = hits[:k]
        return retrieval
