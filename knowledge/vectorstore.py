"""The dense side of the index: chunk vectors in Chroma.

Embedded (`PersistentClient` in the data dir) by default; a Chroma server
(`HttpClient`) when `MADOGUCHI_KNOWLEDGE__CHROMA_URL` is set, so several app workers share one
index. We always pass our own vectors, so Chroma never loads (or downloads)
an embedding model of its own. Ids are the chunk ids of the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from bot.settings import Settings

COLLECTION = "madoguchi_chunks"
#: The HNSW index's settings, so the dense search is repeatable and as good as exact. Below its sync threshold
#: (1,000 vectors: ../shared/corpus + sample_kb is ~700) Chroma rebuilds the graph from its log, with several
#: threads, in every process that opens the collection, so the graph differs from one process to the next; with
#: Chroma's default ef_search (100, for k = 40) 1 in 12 top-40 lists differed. An ef_search of SEARCH_EF visits
#: the whole graph of an index this size, so the hits are the exact nearest whatever graph was built; above it,
#: the graph is persisted and reloaded as it is, and the search stays far wider than k
#: (benchmarks/ingest_dense.py measures both). (Chroma 1.5 takes `num_threads` but does not keep it.)
SEARCH_EF = 1000
#: Hits fetched beyond k, so that passages at the same distance (equal texts embedded, so equal vectors: what
#: still differed at the 40th place with the wider search) are ordered by id rather than however the index met them.
TIE_MARGIN = 8
HNSW = {"space": "cosine", "ef_construction": 200, "ef_search": SEARCH_EF}


@dataclass
class DenseHit:
    chunk_id: str
    similarity: float


class VectorStore:
    def __init__(self, settings: Settings) -> None:
        # Imported here, not with the module: Chroma takes most of a second to import, and a command that
        # opens no store (a re-ingest of unchanged files, `madoguchi --help`) should not wait for it.
        import chromadb
        from chromadb.config import Settings as ChromaSettings

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
        collection = self.client.get_or_create_collection(
            COLLECTION, configuration={"hnsw": dict(HNSW)}, embedding_function=None  # type: ignore[typeddict-item]
        )
        # A collection made before these settings keeps its own; ef_search may change after creation, and is set
        # once (a write: not on every open). ef_construction needs `knowledge ingest --reset`.
        current = (collection.configuration_json or {}).get("hnsw") or {}
        if current.get("ef_search") != SEARCH_EF:
            collection.modify(configuration={"hnsw": {"ef_search": SEARCH_EF}})
        return collection

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
        result = self.collection.query(query_embeddings=[vector], n_results=min(k + TIE_MARGIN, total),
                                       include=["distances"], where=where)
        ids = result["ids"][0]
        distances = result["distances"][0] if result.get("distances") else [1.0] * len(ids)
        ranked = sorted(zip(distances, ids, strict=True), key=lambda hit: (float(hit[0]), hit[1]))[:k]
        return [DenseHit(chunk_id=i, similarity=1.0 - float(d)) for d, i in ranked]

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
