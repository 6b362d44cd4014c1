"""Crashes (issue 20, findings 12 and 16): `madoguchi serve` killed with SIGKILL right after the last
webhook got its 200 loses nothing: every acknowledged LINE and Slack event was stored first and is processed
after the restart (Slack's retries of the same event_id are kept once); a message stored without its reply
gets an apology asking to send it again. A real server process, real signed LINE and Slack requests, a real
kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from bot.security.models import WebhookEvent
from bot.services import Services
from bot.storage.models import ChannelIdentity, Conversation, Message, OutboundMessage
from tests import fake_platforms as fp
from tests.conftest import LiveServer, eventually, free_port, make_settings, responds

Reply = aliased(Message)


class Server:
    """`madoguchi serve` as its own process, on a data dir that outlives it."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir, self.env = data_dir, env
        self.process: subprocess.Popen[bytes] | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen([str(Path(sys.executable).with_name("madoguchi")), "serve", "--port",
                                         str(self.port)], env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        eventually(lambda: responds(f"{self.url}/healthz"), timeout=120, interval=0.2, failure="server did not start")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def _server(tmp_path: Path, platform_env: Callable[[str], dict[str, str]]) -> Iterator[tuple[Server, fp.FakePlatforms, Path]]:
    """A server on a data dir of its own, talking to fake platforms (`platform_env(fake url)`: their settings)."""
    platform = fp.FakePlatforms()
    with LiveServer(platform.app()) as fake:
        data_dir = tmp_path / "data"
        env = os.environ | platform_env(fake.url) | {
            "MADOGUCHI_DATA_DIR": str(data_dir), "MADOGUCHI_LOG__LEVEL": "WARNING",
            "MADOGUCHI_CHAT__UNANSWERED_GRACE_SECONDS": "0", "MADOGUCHI_LIMITS__MESSAGES_PER_USER_PER_MINUTE": "1000"}
        env.pop("MADOGUCHI_DATABASE__URL", None)
        server = Server(data_dir, env)
        yield server, platform, data_dir
        server.stop()


@pytest.fixture
def line_server(tmp_path: Path) -> Iterator[tuple[Server, fp.FakePlatforms, Path]]:
    yield from _server(tmp_path, lambda url: {"MADOGUCHI_LINE__CHANNEL_SECRET": fp.LINE_SECRET,
                                              "MADOGUCHI_LINE__CHANNEL_ACCESS_TOKEN": "line-token",
                                              "MADOGUCHI_LINE__API_URL": f"{url}/line"})


@pytest.fixture
def slack_server(tmp_path: Path) -> Iterator[tuple[Server, fp.FakePlatforms, Path]]:
    yield from _server(tmp_path, lambda url: {"MADOGUCHI_SLACK__BOT_TOKEN": "xoxb-test",
                                              "MADOGUCHI_SLACK__SIGNING_SECRET": fp.SLACK_SECRET,
                                              "MADOGUCHI_SLACK__API_URL": f"{url}/slack/api/"})


def _services(data_dir: Path) -> Services:
    return Services.create(make_settings(data_dir.parent))


def _wait_answered(services: Services, channel: str, count: int, timeout: float = 90) -> tuple[int, int]:
    """(inbound messages, inbound messages with a reply) of the channel, once both reach `count`."""
    def counts() -> tuple[int, int]:
        with services.db.session() as session:
            answered = session.execute(select(func.count(func.distinct(Message.reply_to_id))).where(
                Message.channel == channel, Message.direction == "out")).scalar_one()
            inbound = session.execute(select(func.count()).select_from(Message).where(
                Message.channel == channel, Message.direction == "in")).scalar_one()
        return inbound, answered

    def reached() -> tuple[int, int] | None:
        seen = counts()
        return seen if min(seen) >= count else None

    return eventually(reached, timeout, 0.5, lambda: f"(inbound, answered) = {counts()}, not both {count}")


def test_acknowledged_line_events_survive_kill_9(line_server: tuple[Server, fp.FakePlatforms, Path]) -> None:
    """Finding 12: 20 signed LINE events, kill -9 after the last 200: only 9 were stored."""
    server, platform, data_dir = line_server
    server.start()
    bodies = [fp.line_body(fp.line_text(f"謝金はいくらですか（{n}）"), event_id=f"01HKILL{n:04d}", user=f"U-kill-{n}",
                           reply_token=f"rt-{n}") for n in range(20)]

    def deliver(body: str) -> int:
        return httpx.post(f"{server.url}/line/webhook", content=body.encode(), headers=fp.line_headers(body),
                          timeout=30).status_code

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(deliver, bodies))
    server.kill()  # right after the last 200
    assert codes == [200] * 20
    services = _services(data_dir)
    with services.db.session() as session:
        assert session.execute(select(func.count()).select_from(WebhookEvent)).scalar_one() == 20

    server.start()  # the stored events are processed on start
    assert _wait_answered(services, "line", 20) == (20, 20)
    with services.db.session() as session:  # every user's answer is in the outbox (rows the killed process had
        # leased go out when their lease ends; the others now)
        outbox = set(session.execute(select(OutboundMessage.external_user_id).where(
            OutboundMessage.channel == "line")).scalars())
    assert outbox == {f"U-kill-{n}" for n in range(20)}
    platform.wait_for("line", 1, timeout=60)
    services.close()


def test_a_message_left_unanswered_by_a_kill_is_answered_once_after_a_restart_else_apologised(
        line_server: tuple[Server, fp.FakePlatforms, Path]) -> None:
    """Finding 16: after kill -9 an inbound message stored without its reply stayed unanswered; then it only
    got an apology asking to send it again. Now it is answered (its turn is one transaction that never
    committed, so nothing of it was kept), once; an apology only when answering it is not safe (a later
    message of the same user was answered since) or fails (a stored message that cannot be read)."""
    server, platform, data_dir = line_server
    server.start()
    for n, user in enumerate(("U-stranded", "U-moved-on", "U-broken")):
        body = fp.line_body(fp.line_text("メニュー"), event_id=f"01HFIRST{n}", user=user)
        assert httpx.post(f"{server.url}/line/webhook", content=body.encode(), headers=fp.line_headers(body),
                          timeout=30).status_code == 200
    platform.wait_for("line", 3)
    server.kill()
    services = _services(data_dir)
    old_token = {"context": {"reply_token": "rt-expired", "received_at": time.time() - 600}}
    with services.db.session() as session:  # what a kill between storing a message and answering it leaves
        by_user = {}
        for conversation in session.execute(select(Conversation).where(Conversation.channel == "line")).scalars():
            user = session.execute(select(ChannelIdentity.external_user_id).where(
                ChannelIdentity.person_id == conversation.person_id)).scalar_one()
            by_user[user] = conversation.id
        session.add(Message(conversation_id=by_user["U-stranded"], direction="in", channel="line",
                            platform_message_id="01HSTRANDED", text="謝金はいくらですか", payload=old_token))
        session.add(Message(conversation_id=by_user["U-broken"], direction="in", channel="line",
                            platform_message_id="01HBROKEN", text=None,
                            payload={"location": {"lat": "north", "lon": 500}}))
        stranded = Message(conversation_id=by_user["U-moved-on"], direction="in", channel="line",
                           platform_message_id="01HOLDER", text="旅費は出ますか", payload=old_token)
        session.add(stranded)
        session.flush()
        later = Message(conversation_id=by_user["U-moved-on"], direction="in", channel="line",
                        platform_message_id="01HLATER", text="ありがとう", payload={})
        session.add(later)
        session.flush()  # the later message was answered (by another instance, while this one was down)
        session.add(Message(conversation_id=by_user["U-moved-on"], direction="out", channel="line",
                            reply_to_id=later.id, text="どういたしまして", payload={}))
    server.start()
    calls = platform.wait_for("line", 6, timeout=60)[3:]
    to = {c.body.get("to"): str(c.body) for c in calls}
    assert set(to) == {"U-stranded", "U-moved-on", "U-broken"}, to
    assert "5,280円" in to["U-stranded"] and "もう一度お送りください" not in to["U-stranded"]  # answered
    assert "もう一度お送りください" in to["U-moved-on"] and "旅費は出ますか" in to["U-moved-on"]
    assert "もう一度お送りください" in to["U-broken"]
    with services.db.session() as session:
        handlers = dict(session.execute(select(Message.platform_message_id, Reply.handler).join(
            Reply, Reply.reply_to_id == Message.id).where(Message.platform_message_id.in_(
                ["01HSTRANDED", "01HOLDER", "01HBROKEN"]))).all())
    assert handlers["01HSTRANDED"] != "recovery" and handlers["01HOLDER"] == handlers["01HBROKEN"] == "recovery"
    server.stop()
    server.start()  # a second restart answers and apologises for nothing again
    time.sleep(3)
    assert len(platform.of("line")) == 6
    services.close()


def test_acknowledged_slack_events_survive_kill_9_and_retries_are_kept_once(
        slack_server: tuple[Server, fp.FakePlatforms, Path]) -> None:
    """Finding 12 for Slack: bolt answered 200 before its listener ran, so an event acknowledged just before a
    kill was lost (Slack does not resend what it got a 200 for). 20 signed direct messages and a button press,
    kill -9 after the last 200: all 21 are in the inbox, processed after the restart; Slack's retries of the
    same events (X-Slack-Retry-Num, same event_id, signed anew) add nothing."""
    server, platform, data_dir = slack_server
    server.start()
    events = [fp.slack_message_event(f"謝金はいくらですか（{n}）", user=f"U-kill-{n}", event_id=f"EvKILL{n:04d}",
                                     channel=f"D-kill-{n}") for n in range(20)]

    def deliver(body: str, content_type: str = "application/json", retry: int = 0) -> int:
        headers = fp.slack_headers(body) | {"Content-Type": content_type}
        if retry:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return httpx.post(f"{server.url}/slack/events", content=body.encode(), headers=headers, timeout=30).status_code

    button = fp.slack_button_payload("メニュー", user="U-button", channel="D-button", action_ts="9.9")
    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(deliver, events))
    codes.append(deliver(button, "application/x-www-form-urlencoded"))
    server.kill()  # right after the last 200
    assert codes == [200] * 21
    services = _services(data_dir)
    with services.db.session() as session:
        assert session.execute(select(func.count()).select_from(WebhookEvent).where(
            WebhookEvent.channel == "slack")).scalar_one() == 21

    server.start()  # the stored events are processed on start
    with ThreadPoolExecutor(10) as pool:  # Slack retries what it thinks timed out: same event ids
        assert list(pool.map(lambda body: deliver(body, retry=1), events)) == [200] * 20
    answered = _wait_answered(services, "slack", 21)[1]
    time.sleep(1)  # a duplicate would show up now
    with services.db.session() as session:
        inbound = session.execute(select(func.count()).select_from(Message).where(
            Message.channel == "slack", Message.direction == "in")).scalar_one()
        stored = session.execute(select(WebhookEvent.processed_at.is_not(None)).where(
            WebhookEvent.channel == "slack")).scalars().all()
        handlers = set(session.execute(select(Message.handler).where(
            Message.channel == "slack", Message.direction == "out")).scalars())
        # every answer goes where Slack wanted it (the DM channel of the event), killed mid-turn or not
        targets = {(row.payload["context"] or {}).get("channel") for row in session.execute(
            select(OutboundMessage).where(OutboundMessage.channel == "slack")).scalars()}
    assert (inbound, answered, stored) == (21, 21, [True] * 21)
    assert "recovery" not in handlers  # answered, never an apology (finding 16)
    assert targets == {f"D-kill-{n}" for n in range(20)} | {"D-button"}
    platform.wait_for("slack", 1, "chat.postMessage", timeout=60)
    services.close()
