"""How long `madoguchi` takes to start: wall time and CPU time of whole processes, median of N runs.

    python benchmarks/cli_start.py [--runs 7] [--root DIR]

Each run is a fresh interpreter importing `integrations.cli_root` from DIR (default: this checkout) and running
one command line: `--help` (the top-level listing), `knowledge --help` and `visits --help` (a command group
loaded for its own help). One warm-up run per command first (bytecode written, files in the page cache). CPU
time is the child's user + system time, which a loaded machine inflates less than wall time; the machine's
load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (["--help"], ["knowledge", "--help"], ["visits", "--help"])
RUN = "from integrations.cli_root import app; app(prog_name='madoguchi')"


def run_once(root: Path, argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUN, *argv], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root), "COLUMNS": "120"}, timeout=300)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose code is started")
    args = parser.parse_args()
    root = args.root.resolve()
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    print(f"{root} at {commit}; {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.1f}")
    print("| command | wall s (median) | CPU s (median) | runs |\n|---|---|---|---|")
    for argv in COMMANDS:
        run_once(root, argv)  # warm-up
        times = [run_once(root, argv) for _ in range(args.runs)]
        print(f"| madoguchi {' '.join(argv)} | {statistics.median(t[0] for t in times):.2f} | "
              f"{statistics.median(t[1] for t in times):.2f} | {args.runs} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
