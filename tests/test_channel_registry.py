"""Channels behind one interface: the registry, and buttons degrading to numbered text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.messages import Option, Reply
from bot.settings import Settings
from integrations import channels
from integrations.channels import Channel, build_senders, live_channels, numbered
from tests.conftest import make_settings


class Recorder:
    channel = "sms"

    def __init__(self, settings: Settings) -> None:
        self.sent: list[list[Reply]] = []

    def send(self, row: Any, replies: list[Reply]) -> None:
        self.sent.append(replies)


def test_a_platform_without_buttons_gets_numbered_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sms = Channel("sms", lambda settings: True, Recorder, buttons=False)
    monkeypatch.setattr(channels, "registry", lambda: (Channel("cli", lambda s: True), sms))
    assert live_channels(make_settings(tmp_path)) == ["cli", "sms"]
    sender = build_senders(make_settings(tmp_path))["sms"]
    assert sender.channel == "sms"
    menu = Reply(text="ご用件を選んでください。", options=[Option(label="チェックイン", value="visits:checkin"),
                                                     Option(label="担当者に問い合わせる", value="contact:human")])
    sender.send(None, [menu, Reply(text="ボタンなし")])  # type: ignore[arg-type]
    sent = sender.inner.sent[0]  # type: ignore[attr-defined]
    assert sent[0].text == "ご用件を選んでください。\n\n1. チェックイン\n2. 担当者に問い合わせる" and sent[0].options == []
    assert sent[1].text == "ボタンなし"


def test_numbered_leaves_a_reply_without_options_alone() -> None:
    reply = Reply(text="こんにちは")
    assert numbered(reply) is reply


def test_the_registry_lists_every_channel_once() -> None:
    names = [channel.name for channel in channels.registry()]
    assert names == ["cli", "web", "slack", "telegram", "line"]
