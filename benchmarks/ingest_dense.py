"""Is the dense search repeatable, and what does it cost? (knowledge/vectorstore.py; docs/BENCHMARKS.md, ingest)

    python benchmarks/ingest_dense.py DATA_DIR [--queries 400]

DATA_DIR is an ingested data dir (SQLite; `madoguchi knowledge ingest ../shared/corpus sample_kb`). Its chunk
vectors are added again, file by file as ingest adds them, into two fresh Chroma dirs, each by a process of
its own; then each index is queried by a new process (and the first once more), with the same query vectors:
every 8th vector of the embedding cache (answer units' and FAQ questions' e5 vectors, stand-ins for questions
that need no embedder). Printed: how many ranked top-40 lists (and top-10, and sets) agree between the
processes, over the whole index and scoped to half of the sources as a program's questions are; the recall of
the exact top 40 (cosine over all vectors, numpy); the time to add the vectors and per query.
Chroma rebuilds an index below its sync threshold (1,000 vectors) from its log in every process that opens
it, so only separate processes show whether the graph comes out the same.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
K = 40


def _store(data: Path):  # type: ignore[no-untyped-def]
    os.environ["MADOGUCHI_DATA_DIR"] = str(data)
    from bot.settings import Settings
    from knowledge.vectorstore import VectorStore

    return VectorStore(Settings())


def _database(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(next(data.glob("*.sqlite3")))


def build(source: Path, dest: Path) -> None:
    got = _store(source).collection.get(include=["embeddings"])
    vectors = dict(zip(got["ids"], got["embeddings"], strict=True))
    rows = _database(source).execute("select id, source_id from knowledge_chunks order by source_id, ordinal").fetchall()
    store = _store(dest)
    started = time.perf_counter()
    for source_id in sorted({s for _, s in rows}):
        ids = [i for i, s in rows if s == source_id]
        store.add(ids, [list(map(float, vectors[i])) for i in ids], [source_id] * len(ids))
    print(json.dumps({"add_seconds": time.perf_counter() - started, "vectors": len(rows)}))


def query(data: Path, queries: Path) -> None:
    store = _store(data)
    got = store.collection.get(include=["embeddings", "metadatas"])
    ids, matrix = got["ids"], np.asarray(got["embeddings"], dtype=np.float32)
    sources = np.array([m["source_id"] for m in got["metadatas"]])
    half = sorted(set(sources.tolist()))[: len(set(sources.tolist())) // 2]
    vectors = np.load(queries)
    out: dict[str, object] = {"config": (store.collection.configuration_json or {}).get("hnsw")}
    for name, scope in (("all", None), ("half", half)):
        started = time.perf_counter()
        out[name] = [[h.chunk_id for h in store.query(v.tolist(), K, scope)] for v in vectors]
        out[f"ms_{name}"] = 1000 * (time.perf_counter() - started) / len(vectors)
        allowed = np.isin(sources, scope) if scope is not None else np.ones(len(ids), dtype=bool)
        similarity = (matrix @ vectors.T) / np.linalg.norm(matrix, axis=1)[:, None]
        # equal distances (equal texts) by id, as the store orders them; rounded to float32's precision
        order = [np.lexsort((ids, -np.round(np.where(allowed, similarity[:, q], -9.0), 6))) for q in range(len(vectors))]
        out[f"exact_{name}"] = [[ids[i] for i in o[:K]] for o in order]
    print(json.dumps(out))


def _child(*args: str) -> dict:  # type: ignore[type-arg]
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True,
                          cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args() if "--child" not in sys.argv else (None, None)
    if args is None:
        child = sys.argv[sys.argv.index("--child") + 1:]
        build(Path(child[1]), Path(child[2])) if child[0] == "build" else query(Path(child[1]), Path(child[2]))
        return
    work = Path(tempfile.mkdtemp(prefix="ingest-dense-"))
    rows = _database(args.data).execute("select vector from embedding_cache order by text_hash").fetchall()
    vectors = np.array([np.frombuffer(v, dtype=np.float32) for (v,) in rows])[::8][: args.queries]
    np.save(work / "queries.npy", vectors)
    print(f"load {'/'.join(f'{x:.1f}' for x in os.getloadavg())}; {len(vectors)} query vectors")
    built = [_child("build", str(args.data), str(work / name)) for name in ("one", "two")]
    results = [_child("query", str(work / name), str(work / "queries.npy")) for name in ("one", "two", "one")]
    print(f"HNSW settings: {results[0]['config']}")
    print(f"adding {built[0]['vectors']} vectors: {built[0]['add_seconds']:.2f} s, {built[1]['add_seconds']:.2f} s")
    print("\n| lists compared | scope | same ranked top 40 | same top 10 | same set of 40 | recall of the exact 40 "
          "| ms per query |\n|---|---|---|---|---|---|---|")
    for label, a, b in (("two fresh ingests", results[0], results[1]), ("one index, two processes", results[0],
                                                                          results[2])):
        for scope in ("all", "half"):
            x, y, exact = a[scope], b[scope], a[f"exact_{scope}"]
            n = len(x)
            recall = sum(len(set(h) & set(e)) for h, e in zip(x, exact, strict=True)) / sum(map(len, exact))
            print(f"| {label} | {scope} | {sum(p == q for p, q in zip(x, y, strict=True))}/{n} "
                  f"| {sum(p[:10] == q[:10] for p, q in zip(x, y, strict=True))}/{n} "
                  f"| {sum(set(p) == set(q) for p, q in zip(x, y, strict=True))}/{n} | {recall:.4f} "
                  f"| {a[f'ms_{scope}']:.2f} / {b[f'ms_{scope}']:.2f} |")
    print(f"load after {'/'.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
