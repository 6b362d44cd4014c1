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
from collections.abc import Iterable

import numpy as np
from langchain_core.embeddings import Embeddings
from sqlalchemy import select

from bot.storage.db import Database
from bot.storage.models import EmbeddingCache
from knowledge.embeddings import embeddings_name

#: Characters of a unit that are embedded: longer units are run-on lists or table dumps whose start says
#: what they are about, and the embedder's cost grows faster than linearly with length.
UNIT_EMBED_CHARS = 160


def unit_key(text: str) -> str:
    return hashlib.sha256(text[:UNIT_EMBED_CHARS].encode()).hexdigest()


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
            self._load(missing)
            with self._lock:
                missing = {key for key in wanted.values() if key not in self._vectors}
        if missing:
            fresh = [(text, key) for text, key in wanted.items() if key in missing]
            fresh = list({key: (text, key) for text, key in fresh}.values())
            vectors = self.embeddings.embed_documents([text[:UNIT_EMBED_CHARS] for text, _ in fresh])
            with self.db.session() as session:
                for (_, key), vector in zip(fresh, vectors, strict=True):
                    array = np.asarray(vector, dtype=np.float32)
                    session.merge(EmbeddingCache(model=self.model, text_hash=key, vector=array.tobytes()))
                    with self._lock:
                        self._vectors[key] = _unit(array)
            self.embedded += len(fresh)
        with self._lock:
            return {text: self._vectors[key] for text, key in wanted.items()}

    def similarity(self, query: list[float], texts: list[str]) -> np.ndarray:
        """Cosine of the query vector with each unit's vector (0 without a query vector)."""
        if not texts or not query:
            return np.zeros(len(texts), dtype=np.float32)
        found = self.vectors(texts)
        q = _unit(np.asarray(query, dtype=np.float32))
        return np.array([float(found[t] @ q) for t in texts], dtype=np.float32)

    def _load(self, keys: set[str]) -> None:
        with self.db.session() as session:
            rows = session.execute(select(EmbeddingCache).where(EmbeddingCache.model == self.model,
                                                                EmbeddingCache.text_hash.in_(keys))).scalars()
            loaded = {row.text_hash: _unit(np.frombuffer(row.vector, dtype=np.float32)) for row in rows}
        with self._lock:
            self._vectors.update(loaded)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector
