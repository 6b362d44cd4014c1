"""e5 passage vectors of answer units, kept by content hash.

The learned ranker compares the question's e5 query vector with each candidate unit's own passage vector
(a sentence with its list lead-in, a table row with its headers, a FAQ entry), not only with the passage
it stands in. A unit's vector depends on its text alone, so it is kept by the text's hash: in memory for
the process, and in the embedding cache table (the one ingest keeps passage vectors in) across processes,
re-ingests and `--reset`. `knowledge ingest` computes the vectors of every unit of the new or changed
sources when the learned pipeline is chosen; units still missing at question time are embedded then, in one
batch, and kept.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable

import numpy as np
from langchain_core.embeddings import Embeddings
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.storage.db import Database
from bot.storage.models import EmbeddingCache
from knowledge.embeddings import embed_in_background, embeddings_name

#: Characters of a unit that are embedded: longer units are run-on lists or table dumps whose start says
#: what they are about, and the embedder's cost is per token: 80 (was 160) with the passages' 60 brings a cold
#: ingest of ../shared/corpus within 60 s on two cores (docs/BENCHMARKS.md "Latency and ingest").
UNIT_EMBED_CHARS = 80
#: New cache rows written per INSERT while the rest are embedded (one statement per row costs a round trip each).
EMBED_BATCH = 128
#: Keys looked up in the cache table per query (an IN list of a few hundred stays well within any database's limit).
LOOKUP_BATCH = 500


def text_key(text: str) -> str:
    """The embedding cache table's key of an embedded text."""
    return hashlib.sha256(text.encode()).hexdigest()


def unit_key(text: str) -> str:
    return text_key(text[:UNIT_EMBED_CHARS])


def cached_vectors(db: Database, embeddings: Embeddings, texts: Iterable[str],
                   on_progress: Callable[[int, int], None] | None = None, *,
                   meanwhile: Callable[[], None] | None = None,
                   on_ready: Callable[[dict[str, np.ndarray]], None] | None = None,
                   ) -> tuple[dict[str, np.ndarray], set[str]]:
    """Each distinct text's vector as the embedder gave it: from the embedding cache table, else embedded once
    (a text that is a passage's and a unit's, or two units', is one text) and kept there. Returns the vectors by
    text and the texts embedded; `on_progress(done, total)` before the first piece and after each.
    The missing texts are embedded in the background in the order given; meanwhile this thread runs
    `meanwhile()`, then hands `on_ready` the vectors found in the table and then each piece's as it is done,
    and writes the new cache rows EMBED_BATCH at a time."""
    model = embeddings_name(embeddings)
    keys = {text: text_key(text) for text in dict.fromkeys(texts)}
    found: dict[str, np.ndarray] = {}
    wanted = list(dict.fromkeys(keys.values()))
    with db.session() as session:
        for start in range(0, len(wanted), LOOKUP_BATCH):
            rows = session.execute(select(EmbeddingCache.text_hash, EmbeddingCache.vector).where(
                EmbeddingCache.model == model, EmbeddingCache.text_hash.in_(wanted[start:start + LOOKUP_BATCH])))
            found.update((key, np.frombuffer(vector, dtype=np.float32)) for key, vector in rows)
    missing = list({key: text for text, key in keys.items() if key not in found}.values())
    if on_progress:
        on_progress(0, len(missing))
    unwritten: list[EmbeddingCache] = []
    done = 0
    with embed_in_background(embeddings, missing) as run:
        if meanwhile is not None:
            meanwhile()
        if on_ready is not None:
            on_ready({text: found[key] for text, key in keys.items() if key in found})
        for piece, vectors in run.pieces():
            batch = [missing[i] for i in piece]
            found.update((keys[text], vector) for text, vector in zip(batch, vectors, strict=True))
            unwritten += [EmbeddingCache(model=model, text_hash=keys[text], vector=vector.tobytes())
                          for text, vector in zip(batch, vectors, strict=True)]
            if len(unwritten) >= EMBED_BATCH:
                _store(db, unwritten)
                unwritten = []
            done += len(piece)
            if on_ready is not None:
                on_ready(dict(zip(batch, vectors, strict=True)))
            if on_progress:
                on_progress(done, len(missing))
    if unwritten:
        _store(db, unwritten)
    return {text: found[key] for text, key in keys.items()}, set(missing)


def _store(db: Database, rows: list[EmbeddingCache]) -> None:
    """Insert new cache rows in one statement; if another process stored some of them meanwhile, merge."""
    try:
        with db.session() as session:
            session.add_all(rows)
    except IntegrityError:
        with db.session() as session:
            for row in rows:
                session.merge(EmbeddingCache(model=row.model, text_hash=row.text_hash, vector=row.vector))


class UnitVectors:
    def __init__(self, db: Database, embeddings: Embeddings) -> None:
        self.db = db
        self.embeddings = embeddings
        self.model = embeddings_name(embeddings)
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        #: units embedded by this process (the rest came from memory or the table): for tests and benchmarks
        self.embedded = 0

    def vectors(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """Unit text -> its unit-length passage vector, embedding (and keeping) the ones never seen."""
        wanted = {text: unit_key(text) for text in dict.fromkeys(texts)}
        with self._lock:
            missing = {key for key in wanted.values() if key not in self._vectors}
        if missing:
            fresh = {key: text[:UNIT_EMBED_CHARS] for text, key in wanted.items() if key in missing}
            vectors, embedded = cached_vectors(self.db, self.embeddings, fresh.values())
            with self._lock:
                self._vectors.update((key, _unit(vectors[text])) for key, text in fresh.items())
            self.embedded += len(embedded)
        with self._lock:
            return {text: self._vectors[key] for text, key in wanted.items()}

    def similarity(self, query: list[float], texts: list[str]) -> np.ndarray:
        """Cosine of the query vector with each unit's vector (0 without a query vector)."""
        if not texts or not query:
            return np.zeros(len(texts), dtype=np.float32)
        found = self.vectors(texts)
        q = _unit(np.asarray(query, dtype=np.float32))
        return np.array([float(found[t] @ q) for t in texts], dtype=np.float32)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector
