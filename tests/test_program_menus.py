"""The menu of a program without a hearing form offers no hearing sheet (issue 22): the web page's first
screen, the chat menu every platform shows (Telegram, the terminal, LINE's quick replies) and the LINE rich
menu the command installs."""

from __future__ import annotations

from pathlib import Path

import httpx

from bot.engine import Engine
from bot.messages import InboundMessage
from bot.programs import Program, RichMenuItem
from bot.services import Services
from integrations.channels.line_richmenu import menu_items
from integrations.web import create_app
from tests.conftest import LiveServer, make_settings

A, B = "expert-dispatch", "regional-dx"  # the sample programs: A has the dx-platform form, B has none


def values(options: list) -> list[str]:  # type: ignore[type-arg]
    return [o["value"] if isinstance(o, dict) else o.value for o in options]


def test_the_chat_menu_offers_the_hearing_sheet_only_where_the_program_has_one(tmp_path: Path) -> None:
    services = Services.create(make_settings(tmp_path))
    try:
        engine = Engine(services)
        for channel in ("telegram", "cli", "line", "web"):
            at_b = engine.handle(InboundMessage(channel=channel, program=B, external_user_id=f"u-{channel}",
                                                text="メニュー"))
            assert "hearing:start" not in values(at_b[-1].options), channel
            assert "contact:human" in values(at_b[-1].options)
            at_a = engine.handle(InboundMessage(channel=channel, program=A, external_user_id=f"u-{channel}",
                                                text="メニュー"))
            assert "hearing:start" in values(at_a[-1].options), channel
        general = engine.handle(InboundMessage(channel="telegram", external_user_id="u-general", text="メニュー"))
        assert "hearing:start" in values(general[-1].options)  # the general entry point: the default program's
        left = engine.handle(InboundMessage(channel="cli", program=B, external_user_id="u-cli", text="やめる"))
        assert "hearing:start" not in values(left[-1].options)  # the menu after leaving, too

        with LiveServer(create_app(services)) as server:
            for program, offered in ((B, False), (A, True)):
                welcome = httpx.get(f"{server.url}/api/chat/welcome", params={"program": program}, timeout=30).json()
                assert ("hearing:start" in values(welcome["options"])) is offered, program
    finally:
        services.close()


def test_the_rich_menu_of_a_program_without_a_hearing_form_leaves_the_hearing_items_out() -> None:
    items = [RichMenuItem(label="よくある質問", text="ヘルプ"), RichMenuItem(label="ヒアリング", text="ヒアリング開始"),
             RichMenuItem(label="フォーム", liff=True), RichMenuItem(label="担当者に相談", text="担当者と話したい")]
    without = Program(id="no-form", name="フォームなし", hearing_form=None, rich_menu=items)
    assert [item.label for item in menu_items(without)] == ["よくある質問", "担当者に相談"]
    with_form = Program(id="with-form", name="フォームあり", hearing_form="dx-platform", rich_menu=items)
    assert [item.label for item in menu_items(with_form)] == ["よくある質問", "ヒアリング", "フォーム", "担当者に相談"]
