"""The dense search (knowledge/vectorstore.py) is repeatable: the same vectors give the same ranked hits in
every process, whether the index was built by another ingest or opened again, embedded or on a Chroma server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import chromadb
from chromadb.config import Settings as ChromaSettings

from bot.settings import Settings
from knowledge.vectorstore import COLLECTION, HNSW, SEARCH_EF, VectorStore

ROOT = Path(__file__).resolve().parents[1]

#: Runs in a process of its own: Chroma rebuilds an index below its sync threshold from its log in every process
#: that opens it, so only a new process shows whether the graph (and the hits) come out the same.
_SCRIPT = """
import json, sys
import numpy as np
from bot.settings import Settings
from knowledge.vectorstore import VectorStore

data, build = sys.argv[1], sys.argv[2] == "build"
rng = np.random.default_rng(18)
centres = rng.normal(size=(12, 384))
vectors = centres[rng.integers(0, 12, 640)] + 0.9 * rng.normal(size=(640, 384))
vectors[600:] = vectors[:40]  # equal texts embedded: equal vectors, so equal distances
queries = centres[rng.integers(0, 12, 80)] + 0.9 * rng.normal(size=(80, 384))
store = VectorStore(Settings(data_dir=data))
if build:  # as ingest adds them: file by file
    for source in range(8):
        ids = [f"chunk-{i:04d}" for i in range(source * 80, source * 80 + 80)]
        store.add(ids, [vectors[i].tolist() for i in range(source * 80, source * 80 + 80)], [source] * 80)
print(json.dumps({"all": [[h.chunk_id for h in store.query(q.tolist(), 40)] for q in queries],
                  "some": [[h.chunk_id for h in store.query(q.tolist(), 40, [1, 2, 5])] for q in queries]}))
"""


def _hits(data: Path, build: bool) -> dict[str, list[list[str]]]:
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(data), "build" if build else "open"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout)


def test_two_fresh_ingests_give_the_same_ranked_dense_hits_in_every_process(tmp_path: Path) -> None:
    first = _hits(tmp_path / "one", build=True)
    assert _hits(tmp_path / "two", build=True) == first  # the same vectors ingested again into a fresh index
    assert _hits(tmp_path / "one", build=False) == first  # the first index opened again by another process
    assert len(first["all"][0]) == 40 and {int(h[6:]) // 80 for hits in first["some"] for h in hits} == {1, 2, 5}


def _configured(store: VectorStore) -> dict[str, object]:
    return dict(store.collection.configuration_json["hnsw"])


def _an_older_collection(client) -> None:  # type: ignore[no-untyped-def]
    """The collection as earlier versions made it: Chroma's defaults but the distance."""
    client.get_or_create_collection(COLLECTION, metadata={"hnsw:space": "cosine"}, embedding_function=None)


def test_the_search_settings_reach_a_collection_made_before_them(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    settings.chroma_dir.mkdir(parents=True)
    _an_older_collection(chromadb.PersistentClient(path=str(settings.chroma_dir),
                                                   settings=ChromaSettings(anonymized_telemetry=False,
                                                                          allow_reset=True)))
    assert _configured(VectorStore(settings))["ef_search"] == SEARCH_EF
    reopened = chromadb.PersistentClient(path=str(settings.chroma_dir),
                                         settings=ChromaSettings(anonymized_telemetry=False, allow_reset=True))
    assert reopened.get_collection(COLLECTION).configuration_json["hnsw"]["ef_search"] == SEARCH_EF  # stored


def test_a_chroma_server_s_collection_gets_the_search_settings(chroma_server: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, knowledge={"chroma_url": chroma_server})
    store = VectorStore(settings)
    store.reset()  # made by this version
    assert {key: _configured(store)[key] for key in HNSW} == HNSW
    store.client.delete_collection(COLLECTION)
    _an_older_collection(store.client)
    VectorStore(settings)
    assert VectorStore(settings).collection.configuration_json["hnsw"]["ef_search"] == SEARCH_EF  # stored
