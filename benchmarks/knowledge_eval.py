"""Measure madoguchi's retriever on a corpus: cold ingest time, then the eval metrics per question file.

    python benchmarks/knowledge_eval.py CORPUS_DIR QUESTIONS.jsonl [QUESTIONS.jsonl ...]

Ingests into a fresh temporary data dir (no embedding cache), so the ingest
time is the cold figure, then prints one Markdown row per question file for
docs/BENCHMARKS.md.
"""

from __future__ import annotations

import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bot.services import Services
from bot.settings import Settings
from knowledge.evaluation import answer_file, read_jsonl, score
from knowledge.ingest import ingest_paths


def main(corpus: str, question_files: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        services = Services.create(Settings(data_dir=Path(tmp) / "data"))
        started = time.perf_counter()
        report = ingest_paths(services, [Path(corpus)])
        ingest_seconds = time.perf_counter() - started
        print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}, "
              f"date {date.today()}")
        print(f"ingest: {len(report.results)} files, {report.chunks} chunks, {report.embedded} embedded, "
              f"{ingest_seconds:.1f} s (cold)")
        print("| questions | accuracy | abstention | precision | recall@5 | p50 ms | p95 ms |")
        print("|---|---|---|---|---|---|---|")
        for path in question_files:
            answers = answer_file(services.knowledge, Path(path), Path(tmp) / "answers.jsonl")
            result = score(read_jsonl(Path(path)), answers)
            print(f"| {Path(path).name} | {result.accuracy:.1%} | {result.abstention:.1%} | {result.precision:.1%} "
                  f"| {result.recall_at_5:.1%} | {result.p50_ms:.0f} | {result.p95_ms:.0f} |")
        services.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
