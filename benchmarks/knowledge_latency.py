"""Answer latency of the two pipelines on the bank's index (var/bench, as `knowledge_eval.py lodo` leaves it),
and the time of a cold ingest.

    python benchmarks/knowledge_latency.py [--data DIR] [--n 120]
    python benchmarks/knowledge_latency.py --ingest [--pipeline learned] [--data DIR]

Asks `n` bank questions (every ninth, so every document is asked) through
`KnowledgeBase.ask` with the answer cache emptied before each, once per pipeline, and prints p50 and p95
in milliseconds with the machine's load average (the VM is shared: say how busy it was).

`--ingest` ingests ../shared/corpus and sample_kb into DIR (emptied first; default a temporary directory)
in process, then again unchanged, and prints both times, the texts embedded, and the CPU seconds the process
used: on a shared machine the wall time says how busy it was, the CPU time what the ingest costs (on two idle
cores the wall time cannot be below half of it).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any, cast

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.services import Services  # noqa: E402
from bot.settings import Settings  # noqa: E402
from knowledge.evaluation import read_jsonl  # noqa: E402


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _settings(data: Path, pipeline: str) -> Settings:
    # A dict, not a KnowledgeSettings: pydantic-settings merges a dict with any MADOGUCHI_KNOWLEDGE__* setting.
    return Settings(data_dir=data, knowledge=cast(Any, {"pipeline": pipeline}))


def measure_ingest(data: Path, pipeline: str) -> None:
    from knowledge.ingest import ingest_paths

    shutil.rmtree(data, ignore_errors=True)
    services = Services.create(_settings(data, pipeline))
    sources = [ROOT.parent / "shared" / "corpus", ROOT / "sample_kb"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"date {date.today()}, load average before {os.getloadavg()[0]:.1f}; pipeline {pipeline}")
    print("| ingest | files | passages embedded | answer units embedded | seconds | CPU seconds |\n|---|---|---|---|---|---|")
    for label in ("cold (empty data dir)", "again, unchanged"):
        started, cpu = time.perf_counter(), _cpu_seconds()
        report = ingest_paths(services, sources)
        print(f"| {label} | {len(report.results)} | {report.embedded} | {report.units_embedded} "
              f"| {time.perf_counter() - started:.1f} | {_cpu_seconds() - cpu:.1f} |", flush=True)
    services.close()
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=None)
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--ingest", action="store_true", help="measure a cold ingest and an unchanged re-ingest")
    parser.add_argument("--pipeline", default="learned", choices=("classic", "learned"), help="with --ingest")
    args = parser.parse_args()
    if args.ingest:
        measure_ingest(Path(args.data or tempfile.mkdtemp(prefix="ingest-")), args.pipeline)
        return
    args.data = args.data or str(ROOT / "var" / "bench")
    rows = [r for path in sorted((ROOT / "benchmarks" / "questions" / "bank").glob("*.jsonl"))
            for r in read_jsonl(path)]
    questions = [str(r["question"]) for r in rows[::9]][:args.n]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"date {date.today()}, load average before {os.getloadavg()[0]:.1f}; {len(questions)} questions")
    print("| pipeline | p50 ms | p95 ms | max ms |\n|---|---|---|---|")
    for pipeline in ("classic", "learned"):
        services = Services.create(_settings(Path(args.data), pipeline))
        kb = services.knowledge
        kb.ask("ウォームアップ")  # loads the index, the model and the embedder
        times = []
        for question in questions:
            kb._answers.clear()
            started = time.perf_counter()
            kb.ask(question)
            times.append((time.perf_counter() - started) * 1000)
        print(f"| {pipeline} | {np.percentile(times, 50):.0f} | {np.percentile(times, 95):.0f} | {max(times):.0f} |",
              flush=True)
        services.close()
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
