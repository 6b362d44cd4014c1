"""The dense side of the index: chunk vectors in Chroma.

Embedded (`PersistentClient` in the data dir) by default; a Chroma server
(`HttpClient`) when `MADOGUCHI_KNOWLEDGE__CHROMA_URL` is set, so several app workers share one
index. We always pass our own vectors, so Chroma never loads (or downloads)
an embedding model of its own. Ids are the chunk ids of the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

import chromadb
from chromadb.config import Settings as ChromaSettings

from bot.settings import Settings

COLLECTION = "madoguchi_chunks"


@dataclass
class DenseHit:
    chunk_id: str
    similarity: float


class VectorStore:
    def __init__(self, settings: Settings) -> None:
        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
        if settings.knowledge.chroma_url:
            url = urlparse(settings.knowledge.chroma_url)
            self.client = chromadb.HttpClient(
                host=url.hostname or "localhost", port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https", settings=chroma_settings,
            )
        else:
            settings.chroma_dir.mkdir(parents=True, exist_ok=True)
            self.client = chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)
        self.collection = self._collection()

    def _collection(self):  # type: ignore[no-untyped-def]
        return self.client.get_or_create_collection(
            COLLECTION, metadata={"hnsw:space": "cosine"}, embedding_function=None
        )

    def add(self, ids: list[str], vectors: list[list[float]], source_ids: list[int]) -> None:
        if not ids:
            return
        for start in range(0, len(ids), 500):
            end = start + 500
            self.collection.upsert(
                ids=ids[start:end], embeddings=vectors[start:end],
                metadatas=[{"source_id": s} for s in source_ids[start:end]],
            )

    def delete(self, ids: list[str]) -> None:
        for start in range(0, len(ids), 500):
            self.collection.delete(ids=ids[start:start + 500])

    def reset(self) -> None:
        try:
            self.client.delete_collection(COLLECTION)
        except Exception:  # absent already
            pass
        self.collection = self._collection()

    def count(self) -> int:
        return int(self.collection.count())

    def query(self, vector: list[float], k: int, source_ids: list[int] | None = None) -> list[DenseHit]:
        """The `k` nearest chunks, only of `source_ids` when given (a program's own and shared sources)."""
        total = self.count()
        if total == 0 or source_ids == []:
            return []
        where = {"source_id": {"$in": list(source_ids)}} if source_ids is not None else None
        result = self.collection.query(query_embeddings=[vector], n_results=min(k, total), include=["distances"],
                                       where=where)
        ids = result["ids"][0]
        distances = result["distances"][0] if result.get("distances") else [1.0] * len(ids)
        return [DenseHit(chunk_id=i, similarity=1.0 - float(d)) for i, d in zip(ids, distances, strict=True)]

    def ping(self) -> bool:
        self.client.heartbeat()
        return True


class ScopedStore:
    """The store as one program sees it: queries return only the vectors of its sources."""

    def __init__(self, store: VectorStore, source_ids: list[int]) -> None:
        self.store = store
        self.source_ids = sorted(source_ids)
        #: the collection itself, to read stored vectors by id (the FAQ retriever's entry vectors)
        self.collection = store.collection

    def query(self, vector: list[float], k: int) -> list[DenseHit]:
        return self.store.query(vector, k, self.source_ids)

    def ping(self) -> bool:
        return self.store.ping()
