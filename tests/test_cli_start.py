"""`madoguchi` starts without importing every capability: its command groups are listed from a table
(integrations/cli_root.GROUPS) and imported only when one is run or asked for its help (integrations/cli_lazy.py).
The start time itself is measured by benchmarks/cli_start.py, not asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from handlers.capabilities import CAPABILITIES
from integrations.cli_root import GROUPS, app

ROOT = Path(__file__).resolve().parents[1]
#: Modules `madoguchi --help` used to import through the capabilities' command groups (the heavy part of start).
HEAVY = ("handlers", "knowledge", "fastapi", "chromadb", "bm25s", "bot.services", "bot.engine",
         "integrations.channels")


def _imported_after(argv: list[str], env: dict[str, str] | None = None) -> list[str]:
    """The modules of HEAVY a fresh `madoguchi <argv>` process has imported when it is done."""
    program = ("import json, sys\nfrom integrations.cli_root import app\n"
               f"try:\n    app({argv!r}, prog_name='madoguchi')\nexcept SystemExit:\n    pass\n"
               f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} "
               f"or m.startswith({HEAVY!r}))))")
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_the_top_level_help_imports_no_capability() -> None:
    assert _imported_after(["--help"]) == []
    # a group's own help loads that group's capability, and not the others'
    knowledge = _imported_after(["knowledge", "--help"])
    assert "knowledge.cli" in knowledge and "handlers.faq.capability" in knowledge
    # ... from its own module: not the registry, which imports every capability (FastAPI routes, openpyxl)
    assert "handlers.capabilities" not in knowledge and "handlers.hearing.capability" not in knowledge
    assert "integrations.channels.cli" not in knowledge and "fastapi" not in knowledge


def test_a_reingest_of_unchanged_files_opens_no_vector_store(tmp_path: Path) -> None:
    """The startup check loads every capability, but neither their staff API (FastAPI) nor, when no file
    changed, Chroma; nor the answering pipeline (`knowledge eval`'s) or the BM25 library, which only a query
    needs: a re-ingest of unchanged files is meant to take well under two seconds."""
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "guide.md").write_text("# 利用ガイド\n\n## 申込\n\n申込は事務局のフォームから行います。\n", encoding="utf-8")
    env = {"MADOGUCHI_DATA_DIR": str(tmp_path / "data")}
    assert "chromadb" in _imported_after(["knowledge", "ingest", str(folder)], env)
    again = _imported_after(["knowledge", "ingest", str(folder)], env)
    assert "knowledge.ingest" in again and "handlers.capabilities" in again
    assert "chromadb" not in again and "fastapi" not in again
    assert "knowledge.answering" not in again and "knowledge.evaluation" not in again and "bm25s" not in again


def test_the_listed_groups_are_the_ones_the_capabilities_declare_in_their_order() -> None:
    declared = [(name, group.info.help) for capability in CAPABILITIES if capability.cli
                for name, group in capability.cli().items()]
    assert [(g.name, g.help) for g in GROUPS[1:-1]] == declared
    assert [g.name for g in GROUPS[::len(GROUPS) - 1]] == ["programs", "channels"]
    for group in GROUPS:
        assert group.load().info.help == group.help, group.name


def test_every_command_is_listed_and_each_ones_help_works() -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0, listing.output
    names = ["chat", "serve", "config", "audit", "db", "logs", "backup", *(g.name for g in GROUPS)]
    for name in names:
        assert f" {name} " in listing.output, name
        own = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
        assert own.exit_code == 0 and f"Usage: madoguchi {name}" in own.output.replace("root ", "madoguchi "), \
            (name, own.output)
    group = next(g for g in GROUPS if g.name == "visits")
    assert group.help in listing.output
    sub = runner.invoke(app, ["knowledge", "ingest", "--help"], env={"COLUMNS": "200"})
    assert sub.exit_code == 0 and "--reset" in sub.output, sub.output
