"""The staff console in a real Chromium at 1440x900, as call-center staff and an admin use it all day.

One server for the module (the sample knowledge base ingested once), one browser for the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.engine import Engine
from bot.messages import InboundMessage
from bot.outbox import take_pending
from bot.services import Services
from bot.settings import SAMPLE_KB_DIR, Settings
from bot.storage.models import FaqCandidate
from handlers.escalation.models import Ticket
from handlers.escalation.staff import create as create_staff
from integrations.web import create_app
from tests.browser_support import DESKTOP, PHONE, assert_accessible, needs_browser, screenshot
from tests.conftest import LiveServer

pytestmark = needs_browser
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, str]]:
    from knowledge.ingest import ingest_paths

    root = tmp_path_factory.mktemp("inbox")
    services = Services.create(Settings(data_dir=root / "data", staff={"cookie_secure": False}))
    ingest_paths(services, [SAMPLE_KB_DIR])
    with services.db.session() as session:
        create_staff(session, "browser", "ブラウザ太郎", PASSWORD)
        create_staff(session, "kanri", "管理花子", PASSWORD, role="admin")
    with LiveServer(create_app(services)) as server:
        yield services, server.url
    services.close()


@pytest.fixture
def desk(browser: Any, console: tuple[Services, str]) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP, locale="ja-JP")
    page = context.new_page()
    yield page
    context.close()


def login(page: Any, url: str, username: str = "browser") -> None:
    from playwright.sync_api import expect

    page.goto(f"{url}/staff")
    page.get_by_label("ユーザー名").fill(username)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    expect(page.get_by_role("heading", name="お問い合わせキュー")).to_be_visible()


def ticket_for(services: Services, user: str, question: str, *, unsure_first: bool = False) -> int:
    engine = Engine(services)
    if unsure_first:
        first = engine.handle(InboundMessage(channel="web", external_user_id=user, text=question))
        assert first[0].meta["outcome"] in ("unsure", "outside")
        engine.handle(InboundMessage(channel="web", external_user_id=user, choice="contact:human"))
    else:
        engine.handle(InboundMessage(channel="web", external_user_id=user, text="担当者と話したい"))
        engine.handle(InboundMessage(channel="web", external_user_id=user, text=question))
    with services.db.session() as session:
        return int(session.execute(select(Ticket.id).where(Ticket.question == question)).scalar_one())


def test_claim_reply_with_ctrl_enter_and_a_saved_reply_resolve_and_land_on_the_next_ticket(
        desk: Any, console: tuple[Services, str], tmp_path: Path) -> None:
    from playwright.sync_api import expect

    services, url = console
    question = "説明会の会場に駐車場はありますか？"
    first = ticket_for(services, "b-user", question, unsure_first=True)
    second = ticket_for(services, "b-user2", "申請書の押印は必要ですか")
    desk.goto(f"{url}/staff/login")
    assert_accessible(desk, "the login page")
    login(desk, url)

    # Saved replies are managed in the console.
    desk.get_by_role("navigation", name="メニュー").get_by_role("link", name="定型文").click()
    desk.get_by_label("題名").fill("駐車場なし")
    desk.get_by_label("本文").fill("会場には駐車場がありません。公共交通機関をご利用ください。")
    desk.get_by_role("button", name="定型文を保存").click()
    expect(desk.get_by_role("status")).to_contain_text("保存しました")
    assert_accessible(desk, "the saved replies page")

    desk.get_by_role("navigation", name="メニュー").get_by_role("link", name="キュー").click()
    queue = desk.locator("#queue")
    expect(queue.get_by_role("link", name="未対応 2")).to_be_visible()  # counts per filter
    row = queue.locator(f"a[href^='/staff/tickets/{first}?']")
    expect(row).to_contain_text("企業・申請者")  # the role in Japanese
    expect(row).to_contain_text("待ち")  # waiting time
    expect(row).to_contain_text(question)  # last message
    assert_accessible(desk, "the inbox")
    row.click()
    expect(desk.get_by_role("heading", name=f"T-{first:06d}")).to_be_visible()
    # The actions sit above the conversation; the reply box is at the bottom of the window.
    claim = desk.get_by_role("button", name="担当する").bounding_box()
    reply_box = desk.get_by_label("回答（利用者のチャットに届きます）").bounding_box()
    thread = desk.locator("#thread").bounding_box()
    assert claim["y"] < thread["y"] < reply_box["y"] and reply_box["y"] + reply_box["height"] <= DESKTOP["height"]
    transcript = desk.locator("#thread").inner_text()
    assert "contact:human" not in transcript and "担当者に問い合わせる" in transcript  # labels, not values
    assert_accessible(desk, "the ticket view")
    desk.get_by_role("button", name="担当する").click()
    expect(desk.locator("#assignee")).to_have_text("ブラウザ太郎")

    desk.get_by_label("定型文を挿入").select_option(label="駐車場なし")
    reply = desk.get_by_label("回答（利用者のチャットに届きます）")
    expect(reply).to_have_value("会場には駐車場がありません。公共交通機関をご利用ください。")
    reply.press("Control+Enter")
    expect(desk.get_by_role("status")).to_contain_text("回答を送りました")
    expect(desk.locator("#thread")).to_contain_text("会場には駐車場がありません")
    screenshot(desk, "staff-inbox.png", tmp_path)
    desk.get_by_role("button", name="FAQ候補にする").click()
    expect(desk.get_by_role("status")).to_contain_text("FAQ候補にしました")
    desk.get_by_role("button", name="解決にする").click()
    expect(desk.get_by_role("status")).to_contain_text(f"次のお問い合わせ（T-{second:06d}）")
    expect(desk).to_have_url(f"{url}/staff/tickets/{second}")

    # The user got the answer and the survey on their own channel.
    with services.db.session() as session:
        replies = take_pending(session, "web", "b-user")
    assert "会場には駐車場がありません" in replies[0].text and "いかがでしたか" in replies[-1].text

    # Staff publish the answer as an FAQ; the next user is answered without a person.
    desk.get_by_role("navigation", name="メニュー").get_by_role("link", name="FAQ候補").click()
    assert_accessible(desk, "the FAQ candidates page")
    desk.get_by_role("button", name="公開する").first.click()
    expect(desk.get_by_role("status")).to_contain_text("公開しました")
    desk.get_by_role("navigation", name="メニュー").get_by_role("link", name="ダッシュボード").click()
    expect(desk.locator("#first")).not_to_have_text("－")
    expect(desk.locator("#deflection")).to_contain_text("問中")  # a rate always with its counts
    assert desk.locator("svg.bars rect.bar").count() == 28  # two series of 14 days, drawn by the server
    assert_accessible(desk, "the dashboard")
    desk.get_by_role("button", name="ログアウト").click()
    expect(desk).to_have_url(f"{url}/staff/login")
    answer = Engine(services).handle(InboundMessage(channel="web", external_user_id="b-next", text=question))
    assert "駐車場がありません" in answer[0].text and "事務局回答FAQ" in answer[0].text


def test_a_user_message_appears_live_and_closing_without_an_answer_is_confirmed(
        desk: Any, console: tuple[Services, str]) -> None:
    from playwright.sync_api import expect

    services, url = console
    ticket_id = ticket_for(services, "live-user", "補助金の入金はいつですか")
    login(desk, url)
    desk.goto(f"{url}/staff/tickets/{ticket_id}")
    desk.wait_for_load_state("networkidle")
    Engine(services).handle(InboundMessage(channel="web", external_user_id="live-user", text="急ぎでお願いします"))
    expect(desk.locator("#thread")).to_contain_text("急ぎでお願いします")  # no reload: SSE
    newcomer = ticket_for(services, "live-user2", "事業計画書の様式はどこですか")
    expect(desk.locator("#queue")).to_contain_text(f"T-{newcomer:06d}")

    desk.get_by_text("回答なしで終了…").click()
    desk.get_by_role("button", name="回答なしで終了する").click()  # the box is required: nothing happens
    with services.db.session() as session:
        assert session.get(Ticket, ticket_id).status == "open"
    desk.get_by_label("回答を送らずに終了します（利用者には何も届きません）").check()
    desk.get_by_role("button", name="回答なしで終了する").click()
    expect(desk.get_by_role("status")).to_contain_text("回答なしで終了しました")
    with services.db.session() as session:
        assert session.get(Ticket, ticket_id).status == "closed"


def test_a_manual_uploaded_in_the_console_answers_in_the_chat(browser: Any, desk: Any,
                                                              console: tuple[Services, str], tmp_path: Path) -> None:
    from playwright.sync_api import expect

    services, url = console
    manual = tmp_path / "kanagawa-subsidy-guide.md"
    manual.write_text("# 令和8年度 かながわ試作補助金 募集要領\n\n## 申請の締切\n\n"
                      "かながわ試作補助金の申請締切は令和9年2月26日（金）17時です。\n\n"
                      "## 補助率\n\nかながわ試作補助金の補助率は対象経費の3分の2です。\n", encoding="utf-8")
    login(desk, url, "kanri")
    desk.get_by_role("navigation", name="メニュー").get_by_role("link", name="ナレッジ").click()
    assert_accessible(desk, "the knowledge page")
    desk.get_by_label("マニュアル・FAQ ファイルを追加または差し替え", exact=False).set_input_files(str(manual))
    desk.get_by_role("button", name="取り込む").click()
    expect(desk.locator("#upload-status")).to_contain_text("追加しました", timeout=30000)
    expect(desk.locator("#sources")).to_contain_text("かながわ試作補助金")
    expect(desk.locator("#sources")).to_contain_text("令和8年度")

    desk.get_by_label("質問", exact=True).fill("かながわ試作補助金の締切はいつですか？")
    desk.get_by_role("button", name="質問を試す").click()
    expect(desk.locator("#try-result")).to_contain_text("令和9年2月26日")
    expect(desk.locator("#try-result")).to_contain_text("確信度")
    expect(desk.locator("#try-result .excerpt").first).to_contain_text("締切")

    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="ja-JP").new_page()
    phone.goto(url)
    phone.wait_for_selector("body[data-ready='1']")
    phone.get_by_label("メッセージ").fill("かながわ試作補助金の締切はいつですか？")
    phone.get_by_label("メッセージ").press("Enter")
    expect(phone.locator(".msg.bot").last).to_contain_text("令和9年2月26日")
    phone.get_by_label("メッセージ").fill("明日の東京の天気はどうですか？")
    phone.get_by_label("メッセージ").press("Enter")
    expect(phone.locator(".msg.bot").last).to_have_attribute("data-outcome", "outside")
    phone.context.close()

    # Questions the bot declined or users marked 👎 become FAQ candidates in one step.
    desk.reload()
    review = desk.get_by_role("region", name="回答を控えた質問・👎 がついた質問")
    expect(review).to_be_visible()
    with services.db.session() as session:
        before = len(session.execute(select(FaqCandidate)).scalars().all())
    declined = review.get_by_role("row").filter(has_text="明日の東京の天気はどうですか？")
    expect(declined).to_contain_text("回答を控えた")
    declined.get_by_role("button", name="FAQ候補にする", exact=False).click()
    expect(desk.locator(".flash")).to_contain_text("FAQ候補にしました")
    with services.db.session() as session:
        assert len(session.execute(select(FaqCandidate)).scalars().all()) == before + 1

    # An admin can delete a source; it no longer answers.
    desk.locator("#sources").get_by_role("button", name="kanagawa-subsidy-guide.md").click()
    expect(desk.locator(".flash")).to_contain_text("削除しました")
    expect(desk.locator("#sources")).not_to_contain_text("かながわ試作補助金")
