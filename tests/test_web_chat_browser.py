"""The web chat in a real Chromium, as an SME owner on a phone (390x844) and on a desktop (1440x900).

One server for the module (the sample knowledge base ingested once), one browser for the session,
a fresh browser context (so a fresh chat session cookie) per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.services import Services
from bot.settings import SAMPLE_KB_DIR, Settings
from bot.storage.models import ChannelIdentity, Conversation, Message
from handlers.escalation import tickets
from handlers.escalation.models import Ticket
from handlers.escalation.staff import create as create_staff
from handlers.hearing.models import FormResponse
from integrations.web import create_app
from tests.browser_support import DESKTOP, PHONE, assert_accessible, needs_browser, screenshot
from tests.conftest import LiveServer

pytestmark = needs_browser


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, str]]:
    from knowledge.ingest import ingest_paths

    root = tmp_path_factory.mktemp("webchat")
    services = Services.create(Settings(data_dir=root / "data", staff={"cookie_secure": False}))
    ingest_paths(services, [SAMPLE_KB_DIR])
    with LiveServer(create_app(services)) as server:
        yield services, server.url
    services.close()


@pytest.fixture
def phone(browser: Any, app_server: tuple[Services, str]) -> Iterator[Any]:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                  locale="ja-JP")
    page = context.new_page()
    yield page
    context.close()


def open_chat(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")


def web_user(page: Any, services: Services) -> str:
    """The chat identity behind the page's session cookie (the page itself never sees it)."""
    from bot.security import web_sessions

    cookie = next(c for c in page.context.cookies() if c["name"] == web_sessions.COOKIE)
    with services.db.session() as session:
        user = web_sessions.identity_of(session, cookie["value"])
    assert user
    return user


def inbound_count(services: Services, user: str) -> int:
    with services.db.session() as session:
        identity = session.execute(select(ChannelIdentity).where(
            ChannelIdentity.channel == "web", ChannelIdentity.external_user_id == user)).scalar_one_or_none()
        if identity is None:
            return 0

        return session.execute(select(func.count()).select_from(Message).join(
            Conversation, Conversation.id == Message.conversation_id).where(
            Conversation.person_id == identity.person_id, Message.direction == "in")).scalar_one()


def live_buttons(page: Any) -> list[str]:
    return page.locator("#log .options button:enabled, #log .examples button:enabled").all_inner_texts()


def test_first_screen_offers_examples_and_the_menu_and_is_accessible(phone: Any, app_server: tuple[Services, str],
                                                                     tmp_path: Path) -> None:
    from playwright.sync_api import expect

    services, url = app_server
    open_chat(phone, url)
    expect(phone.get_by_role("heading", level=1)).to_contain_text("窓口チャット")
    examples = phone.get_by_role("group", name="質問の例").get_by_role("button")
    assert 3 <= examples.count() <= 4
    expect(phone.get_by_role("button", name="ヒアリングシートに回答する")).to_be_enabled()
    expect(phone.locator("#loc")).to_be_hidden()  # no location is asked for
    assert not phone.context.cookies()  # the page sent nothing by itself: it has not even opened a session
    for button in phone.locator("button:visible").all():
        assert button.bounding_box()["height"] >= 44, button.inner_text()
    assert_accessible(phone, "the chat's first screen")
    screenshot(phone, "chat-phone-first-screen.png", tmp_path)

    # An example question is one tap away and gets an answer with a source that opens in the viewer.
    question = examples.first.inner_text()
    examples.first.click()
    expect(phone.locator(".msg.me")).to_have_text(question)
    cite = phone.locator(".cites a").first
    expect(cite).to_be_visible()
    assert cite.get_attribute("href").startswith("/sources/view?")
    with phone.context.expect_page() as opened:
        cite.click()
    viewer = opened.value
    viewer.wait_for_load_state()
    expect(viewer.get_by_role("heading", level=1)).to_be_visible()
    assert "出典の資料" in viewer.content()
    assert_accessible(viewer, "the source viewer")
    assert_accessible(phone, "the chat with an answer")
    screenshot(phone, "chat-phone-answer.png", tmp_path)


def test_an_answer_names_its_source_once(phone: Any, app_server: tuple[Services, str]) -> None:
    """The known report: under one answer the web chat showed its source twice, as the text's last line
    (「出典：…」, for text-only channels) and as the link to the source right under it. Now only the link,
    on the live answer and on the history after a reload; the API's text keeps the line for other clients."""
    from playwright.sync_api import expect

    _, url = app_server
    open_chat(phone, url)
    box = phone.get_by_label("メッセージ")
    box.fill("専門家派遣は1つの会社で年に何回まで利用できますか？")
    box.press("Enter")
    answer = phone.locator(".msg.bot").last
    expect(answer.locator(".cites a")).to_have_count(1)
    for shown in (answer, None):
        if shown is None:  # the same answer from the history
            phone.reload()
            phone.wait_for_selector("body[data-ready='1']")
            shown = phone.locator(".msg.bot").filter(has=phone.locator(".cites")).last
        label = shown.locator(".cites a").inner_text().removeprefix("📄 ").removesuffix("（資料を開く）")
        assert label and shown.inner_text().count(label) == 1, shown.inner_text()
        assert "出典：" not in shown.inner_text() and "3回" in shown.inner_text()


def test_a_double_enter_sends_once_with_a_typing_indicator(phone: Any, app_server: tuple[Services, str]) -> None:
    from playwright.sync_api import expect

    services, url = app_server
    open_chat(phone, url)
    held: list[Any] = []
    phone.route("**/api/chat", lambda route: held.append(route))  # hold the answer until the checks below are done
    box = phone.get_by_label("メッセージ")
    box.fill("専門家派遣は年に何回まで使えますか？")
    box.press("Enter")
    box.press("Enter")
    expect(phone.locator("#typing")).to_be_visible()
    expect(phone.locator("#send")).to_be_disabled()
    box.fill("もう一度")
    box.press("Enter")  # still waiting: refused, nothing more is sent
    phone.wait_for_timeout(300)
    assert len(held) == 1
    held[0].continue_()
    expect(phone.locator(".msg.bot").nth(1)).to_be_visible()
    expect(phone.locator("#typing")).to_be_hidden()
    expect(phone.locator("#send")).to_be_enabled()
    assert len(held) == 1
    assert phone.locator(".msg.me").count() == 1
    assert inbound_count(services, web_user(phone, services)) == 1


def test_reload_restores_the_conversation_and_the_pending_question_and_old_buttons_are_inert(
        phone: Any, app_server: tuple[Services, str]) -> None:
    from playwright.sync_api import expect

    services, url = app_server
    open_chat(phone, url)
    phone.get_by_role("button", name="ヒアリングシートに回答する").click()
    expect(phone.locator(".msg.bot").last).to_contain_text("企業名")
    box = phone.get_by_label("メッセージ")
    box.fill("株式会社窓口製作所")
    box.press("Enter")
    expect(phone.locator(".msg.bot").last).to_contain_text("法人番号")
    phone.locator("#log .options:not(.stale)").get_by_role("button", name="スキップ").click()
    expect(phone.locator(".msg.bot").last).to_contain_text("事業の概要")
    box.fill("自動車部品の精密加工")
    box.press("Enter")
    expect(phone.locator(".msg.bot").last).to_contain_text("業種")
    phone.locator("#log .options:not(.stale)").get_by_role("button", name="製造業").click()
    expect(phone.locator(".msg.bot").last).to_contain_text("社員数")

    # Only the latest question's buttons work; the earlier ones (スキップ, 戻る, 中断, 業種 ...) are inert.
    latest = phone.locator("#log .options").last.get_by_role("button").all_inner_texts()
    assert live_buttons(phone) == latest
    stale = phone.locator("#log .options.stale button")
    assert stale.count() >= 6 and all(b.is_disabled() for b in stale.all())
    before = [t.strip() for t in phone.locator("#log .msg").all_inner_texts()]

    phone.reload()
    phone.wait_for_selector("body[data-ready='1']")
    after = [t.strip() for t in phone.locator("#log .msg").all_inner_texts()]
    assert after[:len(before)] == before  # the same messages, in the same order
    expect(phone.locator(".msg.bot").last).to_contain_text("社員数")
    assert live_buttons(phone) == latest
    assert "hearing:" not in " ".join(after) and "メニュー" not in after  # labels, not values; nothing page-sent

    box.fill("約５０人")
    box.press("Enter")
    expect(phone.locator(".msg.bot").last).to_contain_text("郵便番号")
    expect(phone.locator(".msg.bot").last).to_contain_text("「50人」として記録しました。")  # how it was read
    with services.db.session() as session:
        response = session.execute(select(FormResponse).order_by(FormResponse.id.desc())).scalars().first()
        assert response.answers.get("employees") in (50, {"value": 50}) or "50" in str(response.answers)


def test_staff_answer_arrives_live_and_a_failed_send_keeps_the_text(phone: Any, app_server: tuple[Services, str],
                                                                   tmp_path: Path) -> None:
    from playwright.sync_api import expect

    services, url = app_server
    open_chat(phone, url)
    phone.get_by_role("button", name="担当者に問い合わせる").click()
    expect(phone.locator(".msg.bot").last).to_contain_text("担当者にお伝えする内容")
    expect(phone.locator("#send")).to_be_enabled()
    box = phone.get_by_label("メッセージ")
    box.fill("説明会の会場に駐車場はありますか？")
    box.press("Enter")
    expect(phone.locator(".msg.bot").last).to_contain_text("受付番号")
    user = web_user(phone, services)
    with services.db.session() as session:
        ticket = session.execute(select(Ticket).order_by(Ticket.id.desc())).scalars().first()
        assert ticket.question == "説明会の会場に駐車場はありますか？"
        staff = create_staff(session, f"sse{ticket.id}", "担当 一郎", "correct horse battery staple")
        tickets.staff_reply(session, ticket, staff, "駐車場はありません。公共交通機関をご利用ください。", via="console")
    expect(phone.locator(".msg.bot").last).to_contain_text("駐車場はありません")
    expect(phone.get_by_role("button", name="解決しました")).to_be_enabled()
    assert user == web_user(phone, services)

    # The network drops: the text stays, and 再送信 sends it once the network is back.
    phone.route("**/api/chat", lambda route: route.abort("internetdisconnected"))
    box.fill("ありがとうございます。もう一つ質問です")
    box.press("Enter")
    expect(phone.get_by_role("alert")).to_contain_text("送信できませんでした")
    expect(box).to_have_value("ありがとうございます。もう一つ質問です")
    phone.unroute("**/api/chat")
    phone.get_by_role("button", name="再送信").click()
    expect(phone.locator(".msg.bot").last).to_contain_text("担当者にお伝えしました")
    expect(box).to_have_value("")
    screenshot(phone, "chat-phone-staff-answer.png", tmp_path)


def test_confirmation_code_link_is_shown_not_sent(phone: Any, app_server: tuple[Services, str]) -> None:
    from playwright.sync_api import expect

    services, url = app_server
    phone.goto(f"{url}/?code=ABCD-2345")
    phone.wait_for_selector("body[data-ready='1']")
    expect(phone.locator(".msg.bot").last).to_contain_text("ABCD-2345")
    assert not phone.context.cookies()  # nothing was sent: not even a session was opened
    assert "code=" not in phone.url
    phone.get_by_role("button", name="送信しない").click()
    expect(phone.locator(".msg.bot").last).to_contain_text("送信しませんでした")
    assert not phone.context.cookies()


def test_desktop_keeps_a_readable_width(browser: Any, app_server: tuple[Services, str]) -> None:
    _, url = app_server
    context = browser.new_context(viewport=DESKTOP, locale="ja-JP")
    page = context.new_page()
    open_chat(page, url)
    width = page.locator(".shell").bounding_box()["width"]
    assert width <= 800, width
    assert_accessible(page, "the chat on a desktop")
    context.close()


def test_docs_are_served_by_the_app(browser: Any, app_server: tuple[Services, str]) -> None:
    from playwright.sync_api import expect

    _, url = app_server
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(url) else None)
    page.goto(f"{url}/docs")
    expect(page.get_by_text("/api/chat").first).to_be_visible()
    assert outside == []
    context.close()


def test_location_button_only_when_a_location_is_asked(phone: Any, app_server: tuple[Services, str]) -> None:
    """The 📍 button is labeled and appears only with a reply that waits for a location."""
    from playwright.sync_api import expect

    _, url = app_server
    phone.route("**/api/chat", lambda route: route.fulfill(json={"replies": [
        {"text": "現在地の位置情報を送ってください。", "options": [{"label": "位置情報を送れない", "value": "visits:noloc"}],
         "links": [], "free_input": False, "citations": [], "asks_location": True}]}))
    open_chat(phone, url)
    expect(phone.locator("#loc")).to_be_hidden()
    phone.get_by_label("メッセージ").fill("チェックイン")
    phone.get_by_label("メッセージ").press("Enter")
    expect(phone.get_by_role("button", name="📍 現在地を送る")).to_be_visible()
    phone.unroute("**/api/chat")
    phone.get_by_label("メッセージ").fill("ヘルプ")
    phone.get_by_label("メッセージ").press("Enter")
    expect(phone.locator("#loc")).to_be_hidden()


def test_an_unsure_answer_at_the_general_page_takes_the_question_to_a_programs_page(
        phone: Any, app_server: tuple[Services, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Not sure at `/` (the general window of the sample's two programs): the reply links each program's page;
    following one opens it here with the question waiting in the box (a page never sends by itself), and sending
    it asks that program's documents alone."""
    from dataclasses import replace

    from playwright.sync_api import expect

    import knowledge.learned as learned
    from knowledge.model import load_model

    services, url = app_server
    shipped = load_model()
    # sure of everything inside a program, of nothing at the general entry point
    monkeypatch.setattr(learned, "load_model",
                        lambda: replace(shipped, gate=replace(shipped.gate, threshold=-1.0, general_threshold=2.0)))
    monkeypatch.setattr(services.settings.knowledge, "answer_threshold", 0.0)
    question = "旅費にはどんなものが含まれますか"
    open_chat(phone, url)
    box = phone.get_by_label("メッセージ")
    box.fill(question)
    box.press("Enter")
    unsure = phone.locator(".msg.bot[data-outcome='unsure']").last
    expect(unsure).to_contain_text("事業名を添えてお尋ねいただくと")
    link = unsure.locator(".links a.program", has_text="専門家派遣")
    expect(link).to_have_attribute("href", "/p/expert-dispatch/")
    assert_accessible(phone, "the general page's unsure reply with the programs' links")
    screenshot(phone, "chat-phone-unsure-at-general.png", tmp_path)
    link.click()
    phone.wait_for_url("**/p/expert-dispatch/")
    phone.wait_for_selector("body[data-ready='1']")
    expect(phone.locator(".carried")).to_be_visible()
    expect(box).to_have_value(question)
    # the page says whose window it is and opens on its own first screen (its examples), though the visitor
    # already has a session from the general page
    expect(phone.locator("header h1")).to_contain_text("専門家派遣")
    expect(phone.locator(".examples button").first).to_be_visible()
    assert_accessible(phone, "a program's page with a carried question")
    screenshot(phone, "chat-phone-carried-question.png", tmp_path)
    user = web_user(phone, services)
    before = inbound_count(services, user)
    box.press("Enter")
    answered = phone.locator(".msg.bot[data-outcome='answered']").last
    expect(answered).to_be_visible()
    assert inbound_count(services, user) == before + 1
    phone.reload()  # carried once: not offered again
    phone.wait_for_selector("body[data-ready='1']")
    assert phone.locator(".carried").count() == 0 and box.input_value() == ""
