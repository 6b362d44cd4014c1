"""Entry points per program on Telegram (its own bot and webhook secret) and Slack (channel mapping), and which
sources answer where (own, unclaimed, shared)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.programs import load_programs
from bot.services import Services
from bot.storage.models import Conversation
from integrations.web import create_app
from tests import fake_platforms as fp
from tests.conftest import LiveServer, eventually, make_settings

PROGRAM = """
id: {id}
name: {id} 事業
default: {default}
knowledge: {{sources: [{source}], shared: {shared}}}
telegram: {{bot_token_env: TG_{env}_TOKEN, secret_token_env: TG_{env}_SECRET}}
slack: {{channels: [C0{env}]}}
"""


def programs(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "docs").mkdir()
    for pid, default, shared in (("alpha", "true", "false"), ("beta", "false", "false"), ("common", "false", "true")):
        env = pid.upper()
        (folder / "docs" / f"{pid}.md").write_text(f"# {pid}\n\n本文です。\n", encoding="utf-8")
        (folder / f"{pid}.yaml").write_text(PROGRAM.format(id=pid, default=default, env=env, shared=shared,
                                                           source=f"docs/{pid}.md"), encoding="utf-8")
        monkeypatch.setenv(f"TG_{env}_TOKEN", f"{len(pid)}00:{env}-token")
        monkeypatch.setenv(f"TG_{env}_SECRET", f"{pid}-webhook-secret")
    return folder


def test_sources_answer_in_their_program_plus_unclaimed_and_shared(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    folder = programs(tmp_path / "programs", monkeypatch)
    catalog = load_programs(make_settings(tmp_path, programs__dir=folder))
    docs = folder / "docs"
    alpha, beta = catalog.source_filter("alpha"), catalog.source_filter("beta")
    unclaimed = str(tmp_path / "general-manual.pdf")
    assert alpha.allows(str(docs / "alpha.md")) and not alpha.allows(str(docs / "beta.md"))
    assert beta.allows(str(docs / "beta.md")) and not beta.allows(str(docs / "alpha.md"))
    for scope in (alpha, beta):
        assert scope.allows(unclaimed) and scope.allows(str(docs / "common.md"))  # unclaimed, and shared: true
    assert catalog.source_filter(None) is None  # a general entry point: every source


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Services, fp.FakePlatforms, str]]:
    platform = fp.FakePlatforms()
    with LiveServer(platform.app()) as fake:
        settings = make_settings(tmp_path, programs__dir=programs(tmp_path / "programs", monkeypatch),
                                 telegram__api_url=f"{fake.url}/telegram/bot", slack__bot_token="xoxb-test",
                                 slack__signing_secret=fp.SLACK_SECRET, slack__api_url=f"{fake.url}/slack/api/")
        services = Services.create(settings)
        with LiveServer(create_app(services)) as server:
            yield services, platform, server.url
        services.close()


def conversations(services: Services) -> list[tuple[str, str]]:
    with services.db.session() as session:
        return sorted((c.channel, c.program) for c in session.execute(select(Conversation)).scalars())




def test_each_program_bot_has_its_own_webhook_and_secret(rig: tuple[Services, fp.FakePlatforms, str]) -> None:
    services, platform, url = rig
    update = json.dumps(fp.telegram_text("ヘルプ", 7), ensure_ascii=False)
    headers = {"Content-Type": "application/json"}
    wrong = httpx.post(f"{url}/telegram/beta/webhook", content=update.encode(),
                       headers=headers | {fp.TELEGRAM_SECRET_HEADER: "alpha-webhook-secret"}, timeout=30)
    assert wrong.status_code == 403
    assert httpx.post(f"{url}/telegram/webhook", content=update.encode(), headers=headers, timeout=30).status_code == 404
    right = httpx.post(f"{url}/telegram/beta/webhook", content=update.encode(),
                       headers=headers | {fp.TELEGRAM_SECRET_HEADER: "beta-webhook-secret"}, timeout=30)
    assert right.status_code == 200
    sent = platform.wait_for("telegram", 1, "sendMessage")[0]
    assert sent.authorization == "400:BETA-token"  # answered by program B's own bot
    assert conversations(services) == [("telegram", "beta")]


def test_slack_messages_in_a_program_channel_belong_to_that_program(
        rig: tuple[Services, fp.FakePlatforms, str]) -> None:
    services, platform, url = rig
    event = {"type": "app_mention", "channel": "C0BETA", "user": "U123", "text": "<@UBOT> ヘルプ",
             "ts": f"{time.time():.6f}"}
    body = json.dumps({"token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                       "event_id": "EvMention1", "event_time": int(time.time()), "event": event}, ensure_ascii=False)
    answer = httpx.post(f"{url}/slack/events", content=body.encode(),
                        headers=fp.slack_headers(body) | {"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 200
    eventually(lambda: conversations(services))
    assert conversations(services) == [("slack", "beta")]
    dm = fp.slack_message_event("ヘルプ", user="U999", event_id="EvDm1", channel="D0DM")
    httpx.post(f"{url}/slack/events", content=dm.encode(),
               headers=fp.slack_headers(dm) | {"Content-Type": "application/json"}, timeout=30)
    eventually(lambda: ("slack", "") in conversations(services))  # a DM is a general entry point


def test_telegram_polling_serves_every_programs_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`channels telegram-polling` polls the general bot and each program's own bot (one poller per token); an
    update keeps the program of the bot it came to, and the answer goes out from that bot."""
    import threading

    from bot.engine import Engine
    from integrations.channels import build_worker
    from integrations.channels.delivery import ChannelRuntime
    from integrations.channels.telegram import polling_bots, run_polling

    general = "900:GENERAL-token"
    platform = fp.FakePlatforms()
    with LiveServer(platform.app()) as fake:
        settings = make_settings(tmp_path, programs__dir=programs(tmp_path / "programs", monkeypatch),
                                 telegram__api_url=f"{fake.url}/telegram/bot", telegram__bot_token=general)
        services = Services.create(settings)
        bots = polling_bots(settings)
        assert bots == {"": general, "alpha": "500:ALPHA-token", "beta": "400:BETA-token",
                        "common": "600:COMMON-token"}
        for user, token in enumerate(bots.values(), start=1):
            platform.telegram_updates[token] = [fp.telegram_text("ヘルプ", update_id=7, user=user)]
        worker = build_worker(services)
        worker.start()
        stop = threading.Event()
        poller = threading.Thread(target=run_polling, args=(services, ChannelRuntime(Engine(services), worker)),
                                  kwargs={"stop": stop, "timeout": 1}, daemon=True)
        poller.start()
        try:
            sent = platform.wait_for("telegram", 4, "sendMessage")
        finally:
            stop.set()
            poller.join(timeout=10)
            worker.stop()
        assert {(call.authorization, str(call.body["chat_id"])) for call in sent} == {
            (token, str(user)) for user, token in enumerate(bots.values(), start=1)}
        with services.db.session() as session:
            programs_seen = {c.program for c in session.execute(select(Conversation)).scalars()}
        assert programs_seen == {"", "alpha", "beta", "common"}
        services.close()
