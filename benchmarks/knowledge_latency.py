"""Answer latency of the two pipelines on the bank's index (var/bench, as `knowledge_eval.py lodo` leaves it).

    python benchmarks/knowledge_latency.py [--data DIR] [--n 120]

Asks `n` bank questions (every ninth, so every document is asked) through
`KnowledgeBase.ask` with the answer cache emptied before each, once per pipeline, and prints p50 and p95
in milliseconds with the machine's load average (the VM is shared: say how busy it was).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.services import Services  # noqa: E402
from bot.settings import Settings  # noqa: E402
from knowledge.evaluation import read_jsonl  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(ROOT / "var" / "bench"))
    parser.add_argument("--n", type=int, default=120)
    args = parser.parse_args()
    rows = [r for path in sorted((ROOT / "benchmarks" / "questions" / "bank").glob("*.jsonl"))
            for r in read_jsonl(path)]
    questions = [str(r["question"]) for r in rows[::9]][:args.n]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"date {date.today()}, load average before {os.getloadavg()[0]:.1f}; {len(questions)} questions")
    print("| pipeline | p50 ms | p95 ms | max ms |\n|---|---|---|---|")
    for pipeline in ("classic", "learned"):
        services = Services.create(Settings(data_dir=Path(args.data), knowledge={"pipeline": pipeline}))
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
