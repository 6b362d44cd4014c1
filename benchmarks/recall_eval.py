"""Where the gold span is lost: unit construction, candidate generation, ranking (no ranker is fitted).

    python benchmarks/recall_eval.py [--data DIR] [--bank DIR] [--misses N] [--out FILE.jsonl] [--unsteered N]

For every answerable bank question (in scope, with an `answer_span`), the span is looked for as
benchmarks/knowledge_eval.py's scorer does (`label_units`: the compacted span inside a unit's compacted text,
the unit from the question's document), and the question is put in the first stage that loses it:
- **label**: the span is not in the document at all (normalized and compacted): a label to fix;
- **units**: the document has it, but no unit of any passage holds it whole (a span cut across units or
  passages, a unit cut at MAX_UNIT_CHARS);
- **retrieval**: a unit holds it, but its passage is not among the passages the answer units come from
  (`features.pool` of the retrieval the pipeline runs);
- **candidates**: a candidate unit holds it (what the ranker sees; the ranker's job from here on).
Then per retriever, recall@k of the gold passages (a passage with a unit holding the span): BM25 over Sudachi
tokens, e5 dense, the fused ranking, and the pool. The last column of the learned pipeline (span in the top 3
units shown) needs rankers fitted per fold: `knowledge_eval.py lodo`.

Reuses knowledge_eval's index directory (default var/bench; ingested on first use).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.text import compact, normalize_document  # noqa: E402
from knowledge.features import pool  # noqa: E402
from knowledge.retrieval import (  # noqa: E402
    CANDIDATES, POOL_PASSAGES, UNSTEERED_CANDIDATES, Retrieval, RetrievalOptions)
from knowledge.units import units_of  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from knowledge_eval import BANK, CachedQueries, fold_of, holds_span, open_index, read_bank  # noqa: E402

#: The depths recall is read at (the pool is 12 passages; each retriever proposes CANDIDATES).
DEPTHS = (1, 3, 5, 12, 20, CANDIDATES)
STAGES = ("label", "units", "retrieval", "candidates")


def answerable(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("in_scope", True) and (r.get("answer_span") or "").strip()]


class Document:
    """One source's passages with their units, for finding where a span can be read whole."""

    def __init__(self, index, source_id: int) -> None:  # type: ignore[no-untyped-def]
        self.chunks = [c for c in index.chunks if c.source_id == source_id]
        self.units = {c.id: units_of(c.kind, c.section, c.text, c.answer, index.headers.get(c.id))
                      for c in self.chunks}
        self.text = compact("".join(c.text for c in self.chunks))
        self.raw = ""
        path = Path(index.sources[source_id].path)
        if path.is_file() and path.suffix in (".md", ".txt"):
            self.raw = compact(normalize_document(path.read_text(encoding="utf-8", errors="replace")))

    def gold(self, span: str) -> set[str]:
        return {cid for cid, units in self.units.items() if any(holds_span(span, u.text) for u in units)}

    def where(self, span: str) -> str:
        """Why no unit holds the span: inside one passage (cut across its units), across passages, or nowhere."""
        if any(span in compact(c.text) for c in self.chunks):
            return "cut across units"
        if span in self.text:
            return "cut across passages"
        if self.raw and span in self.raw:
            return "lost by chunking"
        return "not in document"


def analyse(index, rows: list[dict]) -> list[dict]:  # type: ignore[no-untyped-def]
    by_name = {s.name: sid for sid, s in index.sources.items()}
    documents: dict[int, Document] = {}
    out = []
    everything = len(index.chunks)
    for row in rows:
        span = compact(row["answer_span"])
        source_id = by_name.get(row["document"])
        result = {"id": row["id"], "document": row["document"], "fold": fold_of(row["document"]),
                  "question": row["question"], "span": row["answer_span"]}
        if source_id is None:
            out.append({**result, "stage": "label", "why": "document not indexed"})
            continue
        document = documents.setdefault(source_id, Document(index, source_id))
        gold = document.gold(span)
        if not gold:
            why = document.where(span)
            out.append({**result, "stage": "label" if why == "not in document" else "units", "why": why})
            continue
        full = index.search(str(row["question"]), k=everything)
        ranks: dict[str, int | None] = {"fused": None, "bm25": None, "dense": None}
        # The fused score alone, without the steered document first: where steering to a wrong document hid it.
        by_score = sorted(full.hits, key=lambda h: h.score, reverse=True)
        unsteered = next((i for i, h in enumerate(by_score) if h.chunk.id in gold), None)
        for rank, hit in enumerate(full.hits):
            if hit.chunk.id in gold:
                ranks["fused"] = rank if ranks["fused"] is None else ranks["fused"]
                for name, value in (("bm25", hit.bm25_rank), ("dense", hit.dense_rank)):
                    if value is not None and value < CANDIDATES and (ranks[name] is None or value < ranks[name]):
                        ranks[name] = value
        # The retrieval the pipeline runs (search's default k): the pool's passages give the candidate units.
        shown = _as_searched(index, full)
        pooled = pool(shown)
        pool_rank = next((i for i, h in enumerate(pooled) if h.chunk.id in gold), None)
        candidate = any(
            holds_span(span, u.text)
            for h in pooled if h.source.id == source_id
            for u in units_of(h.chunk.kind, h.chunk.section, h.chunk.text, h.chunk.answer, index.headers.get(h.chunk.id)))
        stage = "candidates" if candidate else "retrieval"
        out.append({**result, "stage": stage, "why": "" if candidate else _lost_why(full, source_id),
                    "rank_fused": ranks["fused"], "rank_bm25": ranks["bm25"], "rank_dense": ranks["dense"],
                    "rank_unsteered": unsteered,
                    "rank_pool": pool_rank, "pool_size": len(pooled), "steered": full.steered_source,
                    "gold_source": source_id})
    return out


def _as_searched(index, full: Retrieval, k: int = 12) -> Retrieval:  # type: ignore[no-untyped-def]
    """The retrieval `search(question)` returns, cut from the full ranking (the same fusion, its top k)."""
    cut = copy.copy(full)
    ranked = full.hits
    cut.hits = ranked[:k] + ([h for h in ranked[k:] if h.chunk.kind == "faq"] if index.options.faq else [])
    cut.further = [h for h in ranked[k:index.options.pool] if h.chunk.kind != "faq"]
    return cut


def _lost_why(full: Retrieval, source_id: int) -> str:
    if full.steered_source is not None and full.steered_source != source_id:
        return "steered to another document"
    return "ranked below the pool"


def report(results: list[dict], misses: int = 0) -> None:
    total = len(results)
    stages = Counter(r["stage"] for r in results)
    print(f"answerable bank questions with a span: {total}")
    print("\n| where the span is lost | questions | share |\n|---|---|---|")
    for stage in STAGES:
        print(f"| {stage} | {stages[stage]} | {stages[stage] / total:.1%} |")
    whys = Counter((r["stage"], r.get("why", "")) for r in results if r["stage"] != "candidates")
    print("\n| stage | why | questions |\n|---|---|---|")
    for (stage, why), n in whys.most_common():
        print(f"| {stage} | {why} | {n} |")
    retrieved = [r for r in results if r["stage"] in ("retrieval", "candidates")]
    print(f"\nrecall@k of the gold passage ({len(retrieved)} questions whose span some unit holds):")
    print("| retriever | " + " | ".join(f"@{k}" for k in DEPTHS) + " |\n|---|" + "---|" * len(DEPTHS))
    for name in ("bm25", "dense", "unsteered", "fused", "pool"):
        cells = []
        for k in DEPTHS:
            hit = sum(1 for r in retrieved if r.get(f"rank_{name}") is not None and r[f"rank_{name}"] < k)
            cells.append(f"{hit / len(retrieved):.1%}" if retrieved else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\ncandidate recall (a unit of the pool holds the span): {stages['candidates'] / total:.1%} of all, "
          f"mean of folds {_fold_mean(results):.1%}")
    print("\n| fold | questions | label | units | retrieval | candidates |\n|---|---|---|---|---|---|")
    by_fold: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        by_fold[r["fold"]].append(r)
    for fold, rs in sorted(by_fold.items()):
        c = Counter(r["stage"] for r in rs)
        print(f"| {fold} | {len(rs)} | " + " | ".join(f"{c[s] / len(rs):.1%}" for s in STAGES) + " |")
    if misses:
        for stage in ("label", "units", "retrieval"):
            print(f"\nsome questions lost at {stage}:")
            for r in [r for r in results if r["stage"] == stage][:misses]:
                print(f"  {r['id']} [{r.get('why', '')}] {r['question']} -> 「{r['span']}」")


def _fold_mean(results: list[dict]) -> float:
    by_fold: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        by_fold[r["fold"]].append(r["stage"] == "candidates")
    return sum(sum(v) / len(v) for v in by_fold.values()) / len(by_fold) if by_fold else 0.0


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT / "var" / "bench"))
    parser.add_argument("--bank", default=str(BANK))
    parser.add_argument("--misses", type=int, default=0, help="print this many lost questions per stage")
    parser.add_argument("--out", help="write one JSON line per question")
    parser.add_argument("--unsteered", type=int, default=UNSTEERED_CANDIDATES,
                        help="passages kept whatever a steer by words (0: the ablation)")
    parser.add_argument("--pool", type=int, default=POOL_PASSAGES,
                        help="the depth of the fused ranking the answer units come from")
    args = parser.parse_args(argv)
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    services = open_index(data)
    index = services.knowledge.refresh(force=True)
    index.options = RetrievalOptions(unsteered=args.unsteered, pool=args.pool)
    queries = CachedQueries(index.embeddings, data / "query-vectors.pkl")
    index.embeddings = queries
    started = time.perf_counter()
    results = analyse(index, answerable(read_bank(Path(args.bank))))
    queries.save()
    print(f"({time.perf_counter() - started:.0f} s)")
    report(results, args.misses)
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results),
                                  encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
