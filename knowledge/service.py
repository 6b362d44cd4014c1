"""The knowledge base as the rest of the bot sees it: `ask(question) -> Answer`.

Holds the embedder (loaded once per process), the Chroma store and an
in-memory snapshot of chunks for BM25. The snapshot is rebuilt when the
sources table changes (ingest from this or another process), checked at most
once a second so questions stay fast.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select

from bot.settings import Settings
from bot.text import normalize
from bot.storage.db import Database
from bot.storage.models import KnowledgeChunk, KnowledgeSource
from knowledge.answering import Answer, answer_from
from knowledge.edition import today_in_japan
from knowledge.embeddings import build_embeddings
from knowledge.unit_vectors import UnitVectors
from knowledge.retrieval import HybridIndex, IndexedChunk, Retrieval, RetrievalOptions, SourceInfo
from knowledge.vectorstore import ScopedStore, VectorStore
from knowledge.learned import answer_from as learned_answer

#: How often a question checks whether an ingest changed the index: at most once a second costs one query.
STALENESS_CHECK_SECONDS = 1.0
#: Answers kept per index snapshot (question -> answer): a few MB, enough for the questions of a busy day.
ANSWER_CACHE_SIZE = 4096


@dataclass(frozen=True)
class SourceFilter:
    """Which sources may answer a question: a name (one per program; the cache key) and a test on a
    source's path. Built by `bot.programs.ProgramCatalog.source_filter` from the program's YAML, so a
    conversation at `/p/A/` is answered from A's sources and the shared ones only."""

    name: str
    allows: Callable[[str], bool] = field(compare=False, hash=False, repr=False)


def answer_with(pipeline: str, retrieval: Retrieval, threshold: float, today: date | None = None,
                general: bool = False) -> Answer:
    """The answer of the chosen pipeline (settings.knowledge.pipeline): `classic` (knowledge/answering.py)
    or `learned` (knowledge/learned.py: answer units, learned ranker, calibrated gate). `today` (in Japan)
    decides whether a deadline the answer states has passed; `general`: asked at a general entry point of an
    installation with several programs (the learned gate's general threshold; the classic answerer has one)."""
    if pipeline == "learned":
        return learned_answer(retrieval, threshold, today=today, general=general)
    return answer_from(retrieval, threshold, today=today)


def knowledge_is_empty(db: Database) -> bool:
    with db.session() as session:
        return session.execute(select(func.count(KnowledgeSource.id))).scalar_one() == 0


class KnowledgeBase:
    def __init__(self, settings: Settings, db: Database, store: VectorStore) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.embeddings = build_embeddings(settings)
        self.options = RetrievalOptions.for_pipeline(settings.knowledge.pipeline)
        self.unit_vectors = UnitVectors(db, self.embeddings)
        self._index: HybridIndex | None = None
        self._signature: tuple[object, ...] | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        # The same questions come all day (the call-center's reason to exist): answers are cached per
        # index version, so a repeated question costs a dictionary lookup instead of an embedding.
        self._answers: OrderedDict[tuple[str, bool, str, date], Answer] = OrderedDict()
        self._answers_lock = threading.Lock()
        #: one index per program scope, built from the full snapshot on first use and dropped with it
        self._scoped: dict[str, HybridIndex] = {}
        #: today's date in Japan: whether a deadline an answer states has passed (a test sets another clock)
        self.today: Callable[[], date] = today_in_japan

    @classmethod
    def open(cls, settings: Settings, db: Database) -> KnowledgeBase:
        # Its reads never wait for the request pool (a request holding a pooled connection asks questions).
        return cls(settings, db.unpooled(), VectorStore(settings))

    def _current_signature(self) -> tuple[object, ...]:
        with self.db.session() as session:
            row = session.execute(
                select(func.count(KnowledgeSource.id), func.max(KnowledgeSource.ingested_at),
                       func.coalesce(func.sum(KnowledgeSource.chunk_count), 0))
            ).one()
        return tuple(row)

    def refresh(self, force: bool = False) -> HybridIndex:
        now = time.monotonic()
        if not force and self._index is not None and now - self._checked_at < STALENESS_CHECK_SECONDS:
            return self._index
        with self._lock:
            signature = self._current_signature()
            self._checked_at = now
            if force or self._index is None or signature != self._signature:
                self._index = self._load()
                self._signature = signature
                self._scoped = {}
                with self._answers_lock:
                    self._answers.clear()
            return self._index

    def scoped(self, sources: SourceFilter | None) -> HybridIndex:
        """The index of the sources the filter allows (BM25 statistics, document steering and the dense
        search all see only them); the whole index without a filter."""
        index = self.refresh()
        if sources is None:
            return index
        with self._lock:
            scoped = self._scoped.get(sources.name)
            if scoped is None or self._index is not index:
                allowed = {sid: info for sid, info in index.sources.items() if sources.allows(info.path)}
                chunks = [c for c in index.chunks if c.source_id in allowed]
                scoped = HybridIndex(chunks, allowed, ScopedStore(self.store, list(allowed)),  # type: ignore[arg-type]
                                     self.embeddings, self.options)
                scoped.unit_vectors = self.unit_vectors
                self._scoped[sources.name] = scoped
            return scoped

    def _load(self) -> HybridIndex:
        with self.db.session() as session:
            sources = {
                s.id: SourceInfo(id=s.id, name=s.name, title=s.title, path=s.path)
                for s in session.execute(select(KnowledgeSource)).scalars()
            }
            chunks = [
                IndexedChunk(id=c.id, source_id=c.source_id, kind=c.kind, section=c.section, page=c.page,
                             text=c.text, answer=c.answer, tokens=tuple(c.tokens.split()))
                for c in session.execute(
                    select(KnowledgeChunk).order_by(KnowledgeChunk.source_id, KnowledgeChunk.ordinal)
                ).scalars()
            ]
        index = HybridIndex(chunks, sources, self.store, self.embeddings, self.options)
        index.unit_vectors = self.unit_vectors
        return index

    def retrieve(self, question: str, k: int = 12, sources: SourceFilter | None = None) -> Retrieval:
        return self.scoped(sources).search(question, k)

    def ask(self, question: str, sources: SourceFilter | None = None, general: bool = False) -> Answer:
        """The answer to `question` from the sources `sources` allows (all without a filter); identical
        (normalized) questions in the same scope reuse the answer until the index changes. `general`: asked at
        a general entry point of an installation with several programs (`ProgramCatalog.general_entry`)."""
        index = self.scoped(sources)  # first: a new index empties the cache
        today = self.today()  # an answer noting a passed deadline holds for the day it was given
        key = (sources.name if sources else "", general, normalize(question), today)
        with self._answers_lock:
            cached = self._answers.get(key)
            if cached is not None:
                self._answers.move_to_end(key)
                return cached
        retrieval = index.search(question)
        answer = answer_with(self.settings.knowledge.pipeline, retrieval, self.settings.knowledge.answer_threshold,
                             today, general)
        if answer.confident and self.settings.llm.provider != "none":
            from knowledge.generation import generate_answer  # lazy: LangChain loads only with an LLM set

            answer = generate_answer(self.settings, retrieval, answer)
        with self._answers_lock:
            self._answers[key] = answer
            while len(self._answers) > ANSWER_CACHE_SIZE:
                self._answers.popitem(last=False)
        return answer

    def ping(self) -> bool:
        self.store.ping()
        self.refresh()
        return True
