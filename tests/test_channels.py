"""Slack, Telegram and LINE adapters fed real signed payloads; outgoing calls captured by a fake platform."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bot.messages import Option, Reply
from bot.outbox import send_to_person
from bot.services import Services
from bot.storage.models import ChannelIdentity, Message, OutboundMessage
from integrations.channels.delivery import Every, split_text
from integrations.channels.line import quick_reply
from integrations.web import create_app
from tests import fake_platforms as fp
from tests.conftest import LiveServer, eventually, make_settings


@dataclass
class Rig:
    services: Services
    platform: fp.FakePlatforms
    url: str

    def post(self, path: str, body: str, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", content=body.encode(), headers=headers, timeout=30)

    def stored_inbound(self, channel: str) -> int:
        with self.services.db.session() as session:
            return session.execute(select(func.count()).select_from(Message).where(
                Message.channel == channel, Message.direction == "in")).scalar_one()

    def outbound(self, channel: str | None = None) -> OutboundMessage:
        """The one outbound row (of `channel`)."""
        query = select(OutboundMessage)
        if channel is not None:
            query = query.where(OutboundMessage.channel == channel)
        with self.services.db.session() as session:
            row = session.execute(query).scalar_one()
            session.expunge(row)
            return row

    def wait_for_outbound_status(self, status: str, channel: str | None = None, timeout: float = 10) -> bool:
        """The sender marks a row only after the platform has answered, so a test that has
        just seen the request arrive must wait for the row rather than read it at once."""
        return eventually(lambda: self.outbound(channel).status == status, timeout, 0.05,
                          lambda: f"the outbound row is {self.outbound(channel).status}, not {status}")

    # one message per platform, in its own format and signature
    def slack(self, text: str, event_id: str = "Ev1") -> httpx.Response:
        body = fp.slack_message_event(text, event_id=event_id)
        return self.post("/slack/events", body, fp.slack_headers(body) | {"Content-Type": "application/json"})

    def slack_button(self, value: str, action_ts: str = "2.2") -> httpx.Response:
        body = fp.slack_button_payload(value, action_ts=action_ts)
        return self.post("/slack/events", body,
                         fp.slack_headers(body) | {"Content-Type": "application/x-www-form-urlencoded"})

    def telegram(self, update: dict[str, Any], secret: str = fp.TELEGRAM_SECRET) -> httpx.Response:
        return self.post("/telegram/webhook", json.dumps(update, ensure_ascii=False),
                         {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret})

    def line(self, event: dict[str, Any], **kw: Any) -> httpx.Response:
        body = fp.line_body(event, **kw)
        return self.post("/line/webhook", body, fp.line_headers(body))


@pytest.fixture
def rig(tmp_path: Path, database_url: str | None) -> Iterator[Rig]:
    platform = fp.FakePlatforms()
    with LiveServer(platform.app()) as fake:
        settings = make_settings(
            tmp_path, database_url,
            slack__bot_token="xoxb-test", slack__signing_secret=fp.SLACK_SECRET, slack__api_url=f"{fake.url}/slack/api/",
            telegram__bot_token=fp.TELEGRAM_TOKEN, telegram__secret_token=fp.TELEGRAM_SECRET,
            telegram__api_url=f"{fake.url}/telegram/bot",
            line__channel_secret=fp.LINE_SECRET, line__channel_access_token="line-token", line__api_url=f"{fake.url}/line",
        )
        services = Services.create(settings)
        with LiveServer(create_app(services)) as server:
            yield Rig(services, platform, server.url)
        services.close()


def sent_text(call: fp.Call) -> str:
    body = call.body
    if "messages" in body:
        return "\n".join(m["text"] for m in body["messages"])
    return str(body.get("text", ""))


def buttons(call: fp.Call) -> list[tuple[str, str]]:
    """(label, what pressing it sends back) as rendered for each platform."""
    body = call.body
    if call.platform == "slack":
        return [(e["text"]["text"], e["value"]) for b in body["blocks"] if b["type"] == "actions"
                for e in b["elements"]]
    if call.platform == "telegram":
        return [(row[0]["text"], row[0].get("callback_data", "")) for row in body["reply_markup"]["inline_keyboard"]]
    items = body["messages"][-1].get("quickReply", {}).get("items", [])
    return [(i["action"]["label"], i["action"]["data"]) for i in items]


@pytest.mark.parametrize("channel", ["slack", "telegram", "line"])
def test_same_conversation_on_every_channel(rig: Rig, channel: str) -> None:
    method = {"slack": "chat.postMessage", "telegram": "sendMessage", "line": "reply"}[channel]
    if channel == "slack":
        assert rig.slack("ヘルプ").status_code == 200
    elif channel == "telegram":
        assert rig.telegram(fp.telegram_text("ヘルプ", 1)).status_code == 200
    else:
        assert rig.line(fp.line_text("ヘルプ")).status_code == 200
    welcome = rig.platform.wait_for(channel, 1, method)[0]
    assert "madoguchi（窓口）です" in sent_text(welcome)
    labels = dict(buttons(welcome))
    assert "担当者に問い合わせる" in labels and "ヒアリングシートに回答する" in labels

    # Press 「担当者に問い合わせる」 the platform's way.
    pressed = labels["担当者に問い合わせる"]
    if channel == "slack":
        assert pressed == "contact:human"
        assert rig.slack_button(pressed).status_code == 200
    elif channel == "telegram":
        assert pressed.startswith("o:")  # 64-byte callback_data: resolved against the stored reply
        rig.telegram(fp.telegram_button(pressed, 2))
    else:
        assert pressed == "contact:human"
        rig.line(fp.line_postback(pressed), event_id="01HEVENT0002", reply_token="reply-token-2")
    answer = rig.platform.wait_for(channel, 2, method)[1]
    assert "担当者にお伝えする内容" in sent_text(answer)
    assert rig.stored_inbound(channel) == 2
    if channel == "telegram":
        rig.platform.wait_for("telegram", 1, "answerCallbackQuery")


def test_forged_signatures_are_refused_and_nothing_is_stored(rig: Rig) -> None:
    body = fp.slack_message_event("ヘルプ")
    forged = fp.slack_headers(body, secret="wrong-secret") | {"Content-Type": "application/json"}
    assert rig.post("/slack/events", body, forged).status_code == 401
    stale = fp.slack_headers(body, timestamp=int(time.time()) - 600) | {"Content-Type": "application/json"}
    assert rig.post("/slack/events", body, stale).status_code == 401
    assert rig.telegram(fp.telegram_text("ヘルプ", 5), secret="guess").status_code == 403
    line = fp.line_body(fp.line_text("ヘルプ"))
    assert rig.post("/line/webhook", line, fp.line_headers(line, secret="wrong")).status_code == 401
    assert rig.post("/line/webhook", line, {"Content-Type": "application/json"}).status_code == 401
    time.sleep(0.5)
    assert all(rig.stored_inbound(c) == 0 for c in ("slack", "telegram", "line"))
    assert rig.platform.calls == []


def test_bad_bodies_get_4xx_not_500(rig: Rig) -> None:
    assert rig.post("/telegram/webhook", "{not json", {"X-Telegram-Bot-Api-Secret-Token": fp.TELEGRAM_SECRET,
                                                      "Content-Type": "application/json"}).status_code == 400
    assert rig.telegram({"hello": 1}).status_code == 400
    signed_garbage = "[]"
    assert rig.post("/line/webhook", signed_garbage, fp.line_headers(signed_garbage)).status_code == 400


def test_redelivery_is_stored_once_and_answered_once(rig: Rig) -> None:
    # Slack retries with the same event_id (and X-Slack-Retry-Num).
    body = fp.slack_message_event("ヘルプ", event_id="EvDup")
    headers = fp.slack_headers(body) | {"Content-Type": "application/json"}
    assert rig.post("/slack/events", body, headers).status_code == 200
    assert rig.post("/slack/events", body, headers | {"X-Slack-Retry-Num": "1",
                                                      "X-Slack-Retry-Reason": "http_timeout"}).status_code == 200
    # Telegram sends the same update_id again; LINE marks it isRedelivery with the same webhookEventId.
    rig.telegram(fp.telegram_text("ヘルプ", 77))
    rig.telegram(fp.telegram_text("ヘルプ", 77))
    rig.line(fp.line_text("ヘルプ"), event_id="01HDUP")
    rig.line(fp.line_text("ヘルプ"), event_id="01HDUP", redelivery=True)
    for channel, method in (("slack", "chat.postMessage"), ("telegram", "sendMessage"), ("line", "reply")):
        rig.platform.wait_for(channel, 1, method)
    time.sleep(1.0)  # give a duplicate the chance to show up
    for channel in ("slack", "telegram", "line"):
        assert rig.stored_inbound(channel) == 1, channel
    assert len(rig.platform.of("slack", "chat.postMessage")) == 1
    assert len(rig.platform.of("telegram", "sendMessage")) == 1
    assert len(rig.platform.of("line")) == 1


@pytest.mark.parametrize("channel", ["slack", "telegram", "line"])
def test_a_429_is_retried_after_retry_after(rig: Rig, channel: str) -> None:
    rig.platform.fail_next(channel, times=1, retry_after=1)
    if channel == "slack":
        rig.slack("ヘルプ")
    elif channel == "telegram":
        rig.telegram(fp.telegram_text("ヘルプ", 9))
    else:
        rig.line(fp.line_text("ヘルプ"))
    method = {"slack": "chat.postMessage", "telegram": "sendMessage", "line": "reply"}[channel]
    first, second = rig.platform.wait_for(channel, 2, method, timeout=30)[:2]
    assert second.at - first.at >= 0.9
    assert sent_text(second) == sent_text(first)
    assert rig.wait_for_outbound_status("sent", channel)


def test_undeliverable_messages_are_kept_and_retried_later(rig: Rig) -> None:
    rig.platform.fail_next("telegram", times=3, retry_after=1)  # every immediate try fails
    rig.telegram(fp.telegram_text("ヘルプ", 11))
    rig.platform.wait_for("telegram", 3, "sendMessage", timeout=30)
    def tried() -> OutboundMessage | None:
        row = rig.outbound()
        return row if row.attempts else None

    row = eventually(tried, timeout=10)
    assert row.status == "pending" and row.attempts == 1 and "429" in (row.last_error or "")
    # The worker tries again when the row is due (after Retry-After) and then it is delivered.
    rig.platform.wait_for("telegram", 4, "sendMessage", timeout=30)
    assert rig.wait_for_outbound_status("sent"), "the message was not delivered on the later attempt"


def test_line_pushes_when_not_a_reply_and_locations_arrive(rig: Rig) -> None:
    rig.line(fp.line_text("ヘルプ"), event_id="01HA")
    rig.platform.wait_for("line", 1, "reply")
    with rig.services.db.session() as session:
        person_id = session.execute(select(ChannelIdentity.person_id).where(
            ChannelIdentity.external_user_id == "U-line-1")).scalar_one()
        send_to_person(session, person_id, [Reply(text="事務局からのお知らせです。")])
    push = rig.platform.wait_for("line", 1, "push", timeout=20)[0]
    assert push.body["to"] == "U-line-1" and push.body["messages"][0]["text"] == "事務局からのお知らせです。"
    # An expired reply token falls back to push.
    rig.line(fp.line_text("メニュー"), event_id="01HB", reply_token="expired-token")
    rig.platform.wait_for("line", 2, "push")
    rig.line(fp.line_location(35.68, 139.76), event_id="01HC", reply_token="reply-token-3")
    rig.platform.wait_for("line", 3, "reply")  # the first, the rejected expired token, the location's
    with rig.services.db.session() as session:
        stored = session.execute(select(Message.payload).where(Message.direction == "in")
                                 .order_by(Message.id.desc())).scalars().first()
    assert stored["location"] == {"lat": 35.68, "lon": 139.76}


def test_telegram_location_and_start_link_code(rig: Rig) -> None:
    from handlers.accounts import link_codes
    from handlers.accounts.registry import add_person

    with rig.services.db.session() as session:
        expert = add_person(session, "expert", "山田 太郎")
        code = link_codes.issue(session, "link", hours=1, person_id=expert.id)
    rig.telegram(fp.telegram_text(f"/start {code.replace('-', '')}", 21))
    linked = rig.platform.wait_for("telegram", 1, "sendMessage")[0]
    assert "山田 太郎様のアカウントとして連携しました" in sent_text(linked)
    rig.telegram(fp.telegram_location(35.0, 135.0, 22))
    rig.platform.wait_for("telegram", 2, "sendMessage")
    with rig.services.db.session() as session:
        identity = session.execute(select(ChannelIdentity).where(ChannelIdentity.channel == "telegram")).scalar_one()
        assert identity.verified and identity.person_id == expert.id


def test_line_quick_replies_hold_13_items_and_page_the_rest() -> None:
    options = [Option(label=f"選択肢{i}とても長いラベルの名前です", value=f"v{i}") for i in range(30)]
    first = quick_reply(options, row_id=5).to_dict()["items"]
    assert len(first) == 13 and first[-1]["action"]["data"] == "line:page:5:1"
    assert all(len(item["action"]["label"]) <= 20 for item in first)
    second = quick_reply(options, row_id=5, page=1).to_dict()["items"]
    assert [i["action"]["data"] for i in second[:2]] == ["v12", "v13"] and second[-1]["action"]["data"] == "line:page:5:2"
    last = quick_reply(options, row_id=5, page=2).to_dict()["items"]
    assert [i["action"]["data"] for i in last] == [f"v{i}" for i in range(24, 30)]
    assert len(quick_reply(options[:13], row_id=5).to_dict()["items"]) == 13  # exactly 13: no paging


def test_long_answers_split_at_sentence_boundaries() -> None:
    text = "これは一つ目の文です。" * 300 + "最後の文です。"
    pieces = split_text(text, 1000)
    assert all(len(p) <= 1000 for p in pieces)
    assert all(p.endswith("。") for p in pieces)
    assert "".join(pieces) == text
    assert split_text("短い。", 100) == ["短い。"]
    assert split_text("あ" * 250, 100) == ["あ" * 100, "あ" * 100, "あ" * 50]  # no sentence end: hard cut


def test_serve_reports_live_channels(tmp_path: Path) -> None:
    from integrations.channels import live_channels

    assert live_channels(make_settings(tmp_path)) == ["cli", "web"]
    assert live_channels(make_settings(tmp_path, telegram__bot_token="1:x", line__channel_secret="s",
                                       line__channel_access_token="t")) == ["cli", "web", "telegram", "line"]


def test_a_periodic_task_runs_at_once_on_a_machine_just_booted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The monotonic clock counts from boot: the hourly purge waited out the first hour of a fresh machine
    (CI's), because its last run was taken as 0.0. It runs on the first call, then once per period."""
    clock = [120.0]  # two minutes after boot
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    runs: list[float] = []
    hourly = Every(3600, lambda: runs.append(clock[0]) or 1)
    assert hourly() == 1 and runs == [120.0]
    clock[0] += 1800
    assert hourly() == 0 and len(runs) == 1
    clock[0] += 1801
    assert hourly() == 1 and len(runs) == 2
