"""The house's rules run with the tests too (`make lint` runs them before the suite in CI): the import
contracts (import-linter), ruff and mypy, with the configuration in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    if not (BIN / tool).exists():
        pytest.skip(f"{tool} is not installed (make setup-dev installs the dev tools)")
    return subprocess.run([str(BIN / tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_import_contracts_hold() -> None:
    """Core and knowledge never import capabilities or integrations; capabilities never import an
    integration or each other's chat modules."""
    result = run("lint-imports")
    assert result.returncode == 0, result.stdout[-3000:]


def test_ruff_is_clean() -> None:
    result = run("ruff", "check", "bot", "handlers", "integrations", "knowledge", "tests")
    assert result.returncode == 0, result.stdout[-3000:]


def test_mypy_is_clean() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout[-3000:]


def test_screenshots_go_to_the_tmp_dir_unless_docs_are_asked_for(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`make test` rewrote docs/screenshots/*.png on every run, leaving the tree dirty; only `make screenshots`
    (MADOGUCHI_SCREENSHOTS=docs) writes there now."""
    from tests.browser_support import DOCS, screenshot_path

    monkeypatch.delenv("MADOGUCHI_SCREENSHOTS", raising=False)
    assert screenshot_path("x.png", tmp_path) == tmp_path / "screenshots" / "x.png"
    monkeypatch.setenv("MADOGUCHI_SCREENSHOTS", "docs")
    assert screenshot_path("x.png", tmp_path) == DOCS / "x.png" == ROOT / "docs" / "screenshots" / "x.png"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "MADOGUCHI_SCREENSHOTS=docs" in makefile.split("\nscreenshots:")[1].split("\n\n")[0]
