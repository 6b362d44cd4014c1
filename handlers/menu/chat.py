"""Greeting, help and the main menu: what a new user sees first."""

from __future__ import annotations

import re

from bot.handler import Handler, Turn, main_menu
from bot.messages import Reply


class MenuHandler(Handler):
    """「ヘルプ」, 「メニュー」, /start and /help show what the bot can do."""

    name = "menu"
    triggers = (
        "ヘルプ", "へるぷ", "メニュー", "help", "menu", "使い方", "はじめる", "こんにちは",
        re.compile(r"/(start|help|menu)"),
    )
    choice_prefix = "menu:"

    def on_command(self, turn: Turn) -> list[Reply]:
        return [Reply(text=turn.t("welcome"), options=main_menu(turn.services, turn.locale, turn.person,
                                                                       turn.program_id))]
