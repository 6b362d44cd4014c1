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
