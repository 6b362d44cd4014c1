"""What the browser tests share: one Chromium per test session (Debian's, driven by Playwright), axe-core
(vendored from the npm registry in tests/vendor/axe-core), and a helper to save screenshots: into the test's
tmp dir, or into docs/screenshots/ when asked (`make screenshots`, which sets MADOGUCHI_SCREENSHOTS=docs), so
`make test` leaves the git tree clean.

Import the fixtures into a test module (`from tests.browser_support import browser  # noqa: F401`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
AXE_JS = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}

needs_browser = pytest.mark.skipif(not CHROMIUM and not os.environ.get("MADOGUCHI_REQUIRE_BROWSER"),
                                   reason="Debian's chromium is not installed (make test / CI install it)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole test session (each test opens its own context)."""
    if not CHROMIUM:
        pytest.fail("MADOGUCHI_REQUIRE_BROWSER is set but chromium is not installed")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)  # a loaded 2-core CI machine: generous waits, never fixed sleeps
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield instance
        instance.close()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (all of its default rules: WCAG 2.x A/AA and best
    practices). The script is evaluated through the DevTools protocol, so the page's CSP does not apply."""
    if not page.evaluate("() => Boolean(window.axe)"):
        page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    return page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ['violations']});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                            nodes: v.nodes.map(n => n.target.join(' ') + ' :: ' + n.failureSummary)}));
    }""")


def assert_accessible(page: Any, what: str) -> None:
    violations = axe_violations(page)
    assert violations == [], f"axe-core on {what}: " + "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["nodes"][:5]) for v in violations)


def screenshot_path(name: str, tmp_path: Path) -> Path:
    """Where a screenshot goes: the test's tmp dir, or docs/screenshots/ (committed, so a reader sees the
    pages) only when `MADOGUCHI_SCREENSHOTS=docs` (`make screenshots`)."""
    folder = DOCS if os.environ.get("MADOGUCHI_SCREENSHOTS") == "docs" else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    """Save what the user sees (see `screenshot_path`)."""
    path = screenshot_path(name, tmp_path)
    page.screenshot(path=str(path))
    return path
