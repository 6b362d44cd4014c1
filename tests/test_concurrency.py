"""Two app instances against one PostgreSQL behave like one: ordering, idempotency, no double check-in."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text

from handlers.accounts import link_codes
from handlers.accounts.registry import add_company, add_person
from bot.services import Services
from bot.storage.models import ChannelIdentity, Conversation, Message
from handlers.hearing.models import FormResponse
from handlers.visits.models import Visit
from handlers.visits.rules import rules_for
from handlers.visits.service import plan_visit
from integrations.web import create_app
from tests import fake_platforms as fp
from tests.conftest import CHAT_HEADERS, CHAT_TOKEN, LiveServer, eventually, make_settings


@dataclass
class Cluster:
    services: list[Services]
    urls: list[str]
    platform: fp.FakePlatforms

    def chat(self, instance: int, user: str, text: str | None = None, choice: str | None = None) -> list[dict]:
        body = {k: v for k, v in {"user_id": user, "text": text, "choice": choice}.items() if v}
        response = httpx.post(f"{self.urls[instance]}/api/chat", json=body, timeout=60, headers=CHAT_HEADERS)
        assert response.status_code == 200, response.text
        return response.json()["replies"]

    def count(self, model: type) -> int:
        with self.services[0].db.session() as session:
            return session.execute(select(func.count()).select_from(model)).scalar_one()


@pytest.fixture
def cluster(pg_database: str, tmp_path: Path) -> Iterator[Cluster]:
    platform = fp.FakePlatforms()
    with LiveServer(platform.app()) as fake:
        services = [Services.create(make_settings(
            tmp_path / f"worker{i}", pg_database, staff__api_token=CHAT_TOKEN, telegram__bot_token=fp.TELEGRAM_TOKEN,
            telegram__secret_token=fp.TELEGRAM_SECRET, telegram__api_url=f"{fake.url}/telegram/bot"))
            for i in range(2)]
        with LiveServer(create_app(services[0])) as one, LiveServer(create_app(services[1])) as two:
            yield Cluster(services, [one.url, two.url], platform)
        for svc in services:
            svc.close()


def waiting_on_locks(url: str) -> int:
    """Server connections of this test's database waiting for a lock (PostgreSQL's own view)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )).scalar_one())
    finally:
        engine.dispose()


def test_two_fast_messages_from_one_user_are_handled_in_order(cluster: Cluster, pg_database: str) -> None:
    """Two messages of one user in flight at once, on two instances, are handled one after the other in the
    order they arrived. Their overlap is made certain rather than hoped for (a head start measured in
    milliseconds is no order on a busy machine): the test holds the conversation's row while the first message
    reaches the turn's lock, then the second; each is sent once the one before it waits there."""
    for round_ in range(3):
        user = f"fast-{round_}"
        cluster.chat(0, user, "ヒアリング開始")
        with cluster.services[0].db.session() as session:
            conversation_id = session.execute(select(Conversation.id).join(
                ChannelIdentity, ChannelIdentity.person_id == Conversation.person_id)
                .where(ChannelIdentity.external_user_id == user)).scalar_one()
        holder = create_engine(pg_database)
        with ThreadPoolExecutor(2) as pool, holder.connect() as held:
            # NO KEY UPDATE: storing a message (its foreign key) still passes; the turn's FOR UPDATE waits.
            transaction = held.begin()
            held.execute(text("SELECT id FROM conversations WHERE id = :id FOR NO KEY UPDATE"), {"id": conversation_id})
            first = pool.submit(cluster.chat, 0, user, "株式会社順番")
            eventually(lambda: waiting_on_locks(pg_database) == 1, timeout=60, failure="the first message never waited")
            second = pool.submit(cluster.chat, 1, user, "スキップ")
            eventually(lambda: waiting_on_locks(pg_database) == 2, timeout=60, failure="the second message never waited")
            transaction.commit()
            first.result(), second.result()
        holder.dispose()
        with cluster.services[1].db.session() as session:
            response = session.execute(select(FormResponse).join(ChannelIdentity, ChannelIdentity.person_id ==
                                                                 FormResponse.person_id)
                                       .where(ChannelIdentity.external_user_id == user)).scalar_one()
        assert response.answers == {"company_name": "株式会社順番", "corporate_number": None}
        assert response.state["cursor"] == "business_summary"


def test_many_users_on_both_instances_lose_nothing(cluster: Cluster) -> None:
    jobs = [(i % 2, f"many-{i % 10}", f"謝金はいくらですか{i}") for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda job: cluster.chat(*job), jobs))
    assert all(replies for replies in results)
    with cluster.services[0].db.session() as session:
        inbound = session.execute(select(func.count()).select_from(Message).where(Message.direction == "in")).scalar_one()
        answered = session.execute(select(func.count(func.distinct(Message.reply_to_id)))).scalar_one()
    assert inbound == 40 and answered == 40


def test_the_same_platform_update_on_two_instances_is_stored_and_answered_once(cluster: Cluster) -> None:
    update = json.dumps(fp.telegram_text("ヘルプ", 900), ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": fp.TELEGRAM_SECRET}
    barrier = threading.Barrier(4)

    def deliver(url: str) -> int:
        barrier.wait()
        return httpx.post(f"{url}/telegram/webhook", content=update, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(deliver, cluster.urls * 2))
    assert codes == [200, 200, 200, 200]
    cluster.platform.wait_for("telegram", 1, "sendMessage")
    time.sleep(3)  # both workers' delivery loops have run
    assert len(cluster.platform.of("telegram", "sendMessage")) == 1
    with cluster.services[0].db.session() as session:
        stored = session.execute(select(func.count()).select_from(Message).where(
            Message.channel == "telegram", Message.direction == "in")).scalar_one()
    assert stored == 1


def test_no_double_check_in_across_instances_and_channels(cluster: Cluster) -> None:
    services = cluster.services[0]
    with services.db.session() as session:
        company = add_company(session, "株式会社並行")
        expert = add_person(session, "expert", "並行 太郎")
        code = link_codes.issue(session, "link", hours=1, person_id=expert.id)
        visit = plan_visit(session, rules_for(date.today()), expert_id=expert.id, company_id=company.id,
                           day=date.today()).visit
        visit_id, expert_id = visit.id, expert.id
    cluster.chat(0, "expert-web", code)
    with services.db.session() as session:  # the same expert also on a second web account
        session.add(ChannelIdentity(person_id=expert_id, channel="web", external_user_id="expert-web-2",
                                    verified=True))
    barrier = threading.Barrier(4)

    def check_in(args: tuple[int, str]) -> str:
        instance, user = args
        barrier.wait()
        return cluster.chat(instance, user, choice=f"visits:in:{visit_id}")[0]["text"]

    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(check_in, [(0, "expert-web"), (1, "expert-web"), (0, "expert-web-2"),
                                         (1, "expert-web-2")]))
    assert sum("チェックインしました" in text for text in texts) == 1, texts
    assert sum("既にチェックイン済み" in text for text in texts) == 3
    with services.db.session() as session:
        assert session.get(Visit, visit_id).status == "checked_in"
