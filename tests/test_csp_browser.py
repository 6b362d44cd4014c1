"""The strict Content-Security-Policy (no 'unsafe-inline' for scripts or styles) in a real Chromium: every
page works under it, and Chromium reports no CSP violation on any of them, the API docs (Swagger UI from the
app's own copy) and the dashboard's SVG charts included.

Violations are collected the way the browser reports them: `securitypolicyviolation` events (listened to by
an init script, which the page's CSP does not govern) and console errors naming the Content Security Policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from bot.engine import Engine
from bot.messages import InboundMessage
from bot.services import Services
from bot.settings import SAMPLE_KB_DIR, Settings
from bot.storage.models import Company, Person, utcnow
from handlers.escalation.staff import create as create_staff
from handlers.hearing.models import FormResponse
from handlers.visits.models import Visit
from integrations.web import create_app
from tests.browser_support import DESKTOP, PHONE, needs_browser
from tests.conftest import LiveServer

pytestmark = needs_browser
PASSWORD = "correct horse battery staple"

LISTEN = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(
    e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' @ ' + e.sourceFile + ':' + e.lineNumber));
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, str, dict[str, int]]]:
    from knowledge.ingest import ingest_paths

    root = tmp_path_factory.mktemp("csp")
    services = Services.create(Settings(data_dir=root / "data", staff={"cookie_secure": False}))
    ingest_paths(services, [SAMPLE_KB_DIR])
    engine = Engine(services)
    for n, text in enumerate(("謝金はいくらですか", "専門家派遣は年に何回まで使えますか？", "担当者と話したい", "相談があります")):
        engine.handle(InboundMessage(channel="web", external_user_id=f"csp-{n // 2}", text=text))
    with services.db.session() as session:
        create_staff(session, "kanri", "管理花子", PASSWORD, role="admin")
        company, expert = Company(name="株式会社テスト"), Person(role="expert", display_name="専門家")
        session.add_all([company, expert])
        session.flush()
        response = FormResponse(form_id="dx-platform", form_version=1, person_id=expert.id, channel="web",
                                status="submitted", answers={"company_name": "テスト社"}, labels={}, state={},
                                submitted_at=utcnow())
        visit = Visit(expert_person_id=expert.id, company_id=company.id, planned_date=date(2026, 11, 2))
        session.add_all([response, visit])
        session.flush()
        ids = {"hearing": response.id, "visit": visit.id}
    with LiveServer(create_app(services)) as server:
        yield services, server.url, ids
    services.close()


def _page(browser: Any, viewport: dict[str, int]) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport=viewport, locale="ja-JP")
    context.add_init_script(LISTEN)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    return context, page, console


def _violations(page: Any, console: list[str]) -> list[str]:
    return list(page.evaluate("() => window.__csp")) + console


def test_the_chat_and_the_docs_work_with_no_csp_violation(browser: Any,
                                                           site: tuple[Services, str, dict[str, int]]) -> None:
    from playwright.sync_api import expect

    _, url, _ = site
    context, page, console = _page(browser, PHONE)
    page.goto(f"{url}/")
    box = page.get_by_role("textbox")
    box.fill("謝金はいくらですか")
    box.press("Enter")
    expect(page.get_by_text("5,280円").first).to_be_visible()  # the answer, rendered by chat.js
    page.get_by_role("button", name="👍 解決した").first.click()
    assert _violations(page, console) == [], "/"
    page.goto(f"{url}/p/expert-dispatch/")  # a program's own window
    box = page.get_by_role("textbox")
    box.fill("専門家派遣は年に何回まで使えますか？")
    box.press("Enter")
    expect(page.locator(".msg.bot").last.locator(".cites a")).to_have_count(1)  # the cited answer, not the welcome
    assert _violations(page, console) == [], "/p/expert-dispatch/"
    page.goto(f"{url}/sources/view?source=x&section=y")
    assert _violations(page, console) == [], "/sources/view"
    context.close()

    context, page, console = _page(browser, DESKTOP)
    page.goto(f"{url}/docs")
    expect(page.locator(".opblock").first).to_be_visible()  # Swagger UI rendered the operations
    page.locator(".opblock-summary").first.click()  # and expands one (parameters, schemas, examples)
    expect(page.locator(".opblock-body").first).to_be_visible()
    page.get_by_role("button", name="Try it out").first.click()
    expect(page.get_by_role("button", name="Execute").first).to_be_visible()
    page.locator(".models-control").first.click()  # the schemas section opens
    page.wait_for_timeout(500)
    assert _violations(page, console) == [], "/docs"
    context.close()


def test_every_console_page_works_with_no_csp_violation(browser: Any,
                                                        site: tuple[Services, str, dict[str, int]]) -> None:
    from playwright.sync_api import expect

    _, url, ids = site
    context, page, console = _page(browser, DESKTOP)
    page.goto(f"{url}/staff")
    assert _violations(page, console) == [], "/staff/login"
    page.get_by_label("ユーザー名").fill("kanri")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    expect(page.get_by_role("heading", name="お問い合わせキュー")).to_be_visible()
    pages = ["/staff", "/staff/tickets/1", "/staff/dashboard", "/staff/knowledge", "/staff/faq",
             "/staff/saved-replies", "/staff/hearings", f"/staff/hearings/{ids['hearing']}",
             f"/staff/visits/{ids['visit']}"]
    seen = {}
    for path in pages:
        response = page.goto(f"{url}{path}")
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("networkidle")
        seen[path] = _violations(page, console)
        console.clear()
    assert page.goto(f"{url}/staff/dashboard") is not None
    charts = page.locator("svg")
    expect(charts.first).to_be_visible()
    heights = page.locator("svg .bar").evaluate_all("bars => bars.map(b => b.getBoundingClientRect().height)")
    assert len(heights) == 28 and max(heights) > 0  # the day's bars are drawn (styled by staff.css, not inline)
    page.evaluate("() => document.body.setAttribute('style', 'color: red')")  # what an inline style would meet
    assert any("style-src" in v for v in _violations(page, console)), "the violations are not seen"
    assert {path: found for path, found in seen.items() if found} == {}
    context.close()
