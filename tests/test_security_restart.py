"""Crashes (issue 20, findings 12 and 16): `madoguchi serve` killed with SIGKILL right after the last
webhook got its 200 loses nothing: every acknowledged LINE event was stored first and is processed after
the restart; a message stored without its reply gets an apology asking to send it again. A real server
process, real signed LINE requests, a real kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from bot.security.models import WebhookEvent
from bot.services import Services
from bot.storage.models import Conversation, Message, OutboundMessage
from tests import fake_platforms as fp
from tests.conftest import LiveServer, free_port, make_settings


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
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def line_server(tmp_path: Path) -> Iterator[tuple[Server, fp.FakePlatforms, Path]]:
    platform = fp.FakePlatforms()
    with LiveServer(platform.app()) as fake:
        data_dir = tmp_path / "data"
        env = os.environ | {"MADOGUCHI_DATA_DIR": str(data_dir), "LINE_CHANNEL_SECRET": fp.LINE_SECRET,
                            "LINE_CHANNEL_ACCESS_TOKEN": "line-token", "LINE_API_URL": f"{fake.url}/line",
                            "MADOGUCHI_LOG_LEVEL": "WARNING", "UNANSWERED_GRACE_SECONDS": "0",
                            "RATE_LIMIT_PER_USER_PER_MINUTE": "1000"}
        env.pop("DATABASE_URL", None)
        server = Server(data_dir, env)
        yield server, platform, data_dir
        server.stop()


def _services(data_dir: Path) -> Services:
    return Services.create(make_settings(data_dir.parent))


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
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with services.db.session() as session:
            answered = session.execute(select(func.count(func.distinct(Message.reply_to_id))).where(
                Message.channel == "line", Message.direction == "out")).scalar_one()
            inbound = session.execute(select(func.count()).select_from(Message).where(
                Message.channel == "line", Message.direction == "in")).scalar_one()
        if inbound == 20 and answered == 20:
            break
        time.sleep(0.5)
    assert (inbound, answered) == (20, 20)
    with services.db.session() as session:  # every user's answer is in the outbox (rows the killed process had
        # leased go out when their lease ends; the others now)
        outbox = set(session.execute(select(OutboundMessage.external_user_id).where(
            OutboundMessage.channel == "line")).scalars())
    assert outbox == {f"U-kill-{n}" for n in range(20)}
    platform.wait_for("line", 1, timeout=60)
    services.close()


def test_a_message_stored_without_its_reply_gets_an_apology_after_a_restart(
        line_server: tuple[Server, fp.FakePlatforms, Path]) -> None:
    """Finding 16: after kill -9 an inbound message stored without its reply stayed unanswered."""
    server, platform, data_dir = line_server
    server.start()
    body = fp.line_body(fp.line_text("メニュー"), event_id="01HFIRST", user="U-stranded")
    assert httpx.post(f"{server.url}/line/webhook", content=body.encode(), headers=fp.line_headers(body),
                      timeout=30).status_code == 200
    platform.wait_for("line", 1)
    server.kill()
    services = _services(data_dir)
    with services.db.session() as session:  # what a kill between storing a message and answering it leaves
        conversation = session.execute(select(Conversation).where(Conversation.channel == "line")).scalar_one()
        session.add(Message(conversation_id=conversation.id, direction="in", channel="line",
                            platform_message_id="01HSTRANDED", text="謝金はいくらですか", payload={}))
    server.start()
    calls = platform.wait_for("line", 2, timeout=60)
    apology = [c for c in calls if "もう一度お送りください" in str(c.body)]
    assert apology and apology[0].body.get("to") == "U-stranded" and "謝金はいくらですか" in str(apology[0].body)
    server.stop()
    server.start()  # a second restart apologises for nothing again
    time.sleep(3)
    assert len([c for c in platform.of("line") if "もう一度お送りください" in str(c.body)]) == 1
    services.close()
