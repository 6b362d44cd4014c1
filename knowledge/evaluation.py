"""The evaluation contract: answer a question file, then score the answers.

`answer_file` writes one JSON line per question with the answer, whether it
was confident, its citations and latency. `score` computes in-scope accuracy
(a confident answer whose first 300 characters contain one of `expect_any`
after NFKC and removing spaces and commas), out-of-scope abstention,
precision of confident answers, recall@5 of the right source document and
latency percentiles. Keep these definitions stable: CI and others rely on them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.text import compact
from knowledge.service import KnowledgeBase, answer_with


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
    return rows


def answer_one(kb: KnowledgeBase, question_id: str, question: str, general: bool = False) -> dict[str, Any]:
    """One question asked of the whole index; `general`: as at a general entry point of an installation with
    several programs (what `/` answers; `ProgramCatalog.general_entry`)."""
    started = time.perf_counter()
    retrieval = kb.retrieve(question)
    answer = answer_with(kb.settings.knowledge.pipeline, retrieval, kb.settings.knowledge.answer_threshold,
                         general=general)
    latency = (time.perf_counter() - started) * 1000
    return {
        "id": question_id,
        "answer": answer.text if answer.confident else answer.body,
        "confident": answer.confident,
        "confidence": answer.confidence,
        "citations": [{"source": c.source, "title": c.title, "section": c.section, "score": c.score}
                      for c in answer.citations],
        "retrieved_sources": list(dict.fromkeys(h.source.name for h in retrieval.hits[:5])),
        "latency_ms": round(latency, 2),
    }


def answer_file(kb: KnowledgeBase, questions: Path, out: Path, general: bool = False) -> list[dict[str, Any]]:
    rows = read_jsonl(questions)
    kb.refresh(force=True)
    kb.retrieve("ウォームアップ")  # load the embedder before timing
    results = [answer_one(kb, str(r["id"]), str(r["question"]), general) for r in rows]
    with out.open("w", encoding="utf-8") as handle:
        for result in results:
            handle.write(json.dumps(result, ensure_ascii=False) + "\n")
    return results


@dataclass
class EvalReport:
    in_scope: int
    out_of_scope: int
    accuracy: float
    abstention: float
    precision: float
    recall_at_5: float
    p50_ms: float
    p95_ms: float
    failures: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_correct(answer: dict[str, Any], expect_any: list[str]) -> bool:
    head = compact(answer["answer"])[:300]
    return bool(answer["confident"]) and any(compact(e) in head for e in expect_any)


def score(questions: list[dict[str, Any]], answers: list[dict[str, Any]]) -> EvalReport:
    by_id = {a["id"]: a for a in answers}
    in_scope = [q for q in questions if q.get("in_scope", True)]
    out_scope = [q for q in questions if not q.get("in_scope", True)]
    correct = [q for q in in_scope if is_correct(by_id[str(q["id"])], q.get("expect_any", []))]
    abstained = [q for q in out_scope if not by_id[str(q["id"])]["confident"]]
    confident = [q for q in questions if by_id[str(q["id"])]["confident"]]
    confident_right = [q for q in confident if q.get("in_scope", True) and q in correct]
    with_source = [q for q in in_scope if q.get("source")]
    found = [q for q in with_source
             if q["source"] in (by_id[str(q["id"])].get("retrieved_sources")
                                or [c["source"] for c in by_id[str(q["id"])]["citations"]])[:5]]
    latencies = np.array([a["latency_ms"] for a in answers]) if answers else np.zeros(1)
    failures = [f"{q['id']}: {q['question']}" for q in in_scope if q not in correct]
    failures += [f"{q['id']} (out of scope, answered): {q['question']}" for q in out_scope if q not in abstained]
    return EvalReport(
        in_scope=len(in_scope), out_of_scope=len(out_scope),
        accuracy=len(correct) / len(in_scope) if in_scope else 0.0,
        abstention=len(abstained) / len(out_scope) if out_scope else 0.0,
        precision=len(confident_right) / len(confident) if confident else 0.0,
        recall_at_5=len(found) / len(with_source) if with_source else 0.0,
        p50_ms=float(np.percentile(latencies, 50)), p95_ms=float(np.percentile(latencies, 95)),
        failures=failures,
    )
