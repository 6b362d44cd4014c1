"""The engine end to end on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from bot.capability import Capability
from bot.engine import Engine
from bot.handler import Handler, Turn
from bot.messages import InboundMessage, Reply
from bot.services import Services
from bot.storage.audit import verify_chain
from bot.storage.models import AuditEvent, ChannelIdentity, Conversation, Message, Person
from tests.conftest import send


class NameFlow(Handler):
    """A two-step flow used to exercise routing: command -> flow -> question mid-flow -> leave."""

    name = "testflow"
    flow_label = "テスト手続き"
    triggers = ("テスト開始",)

    def on_command(self, turn: Turn) -> list[Reply]:
        turn.start_flow(self.name, {"step": "name"})
        return [Reply(text="お名前は？")]

    def on_flow_message(self, turn: Turn) -> list[Reply] | None:
        if turn.text.endswith("?"):
            return None
        turn.set_flow_state({"step": "done", "name": turn.text})
        turn.end_flow()
        return [Reply(text=f"{turn.text}様、ありがとうございました。")]

    def reprompt(self, turn: Turn) -> list[Reply]:
        return [Reply(text="お名前は？")]


@pytest.fixture
def engine(services: Services) -> Iterator[Engine]:
    services.install(Capability(name="testflow", handler=NameFlow()))
    yield Engine(services)


def count(services: Services, model: type) -> int:
    with services.db.session() as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_first_message_creates_person_identity_conversation_and_stores_both_sides(
        engine: Engine, services: Services) -> None:
    replies = send(engine, "メニュー")
    assert "窓口" in replies[0].text
    assert any(o.value == "contact:human" for o in replies[0].options), "the menu offers a person"
    assert count(services, Person) == 1
    assert count(services, ChannelIdentity) == 1
    assert count(services, Conversation) == 1
    with services.db.session() as session:
        directions = [m.direction for m in session.execute(select(Message).order_by(Message.id)).scalars()]
    assert directions == ["in", "out"]


def test_same_user_continues_same_conversation_other_user_does_not(engine: Engine, services: Services) -> None:
    send(engine, "メニュー", user="a")
    send(engine, "ヘルプ", user="a")
    send(engine, "メニュー", user="b")
    assert count(services, Conversation) == 2
    assert count(services, Person) == 2


def test_redelivered_platform_message_is_handled_once(engine: Engine, services: Services) -> None:
    first = send(engine, "テスト開始", platform_message_id="m-1")
    again = send(engine, "テスト開始", platform_message_id="m-1")
    assert [r.text for r in again] == [r.text for r in first]
    with services.db.session() as session:
        inbound = session.execute(select(func.count()).where(Message.direction == "in")).scalar_one()
        started = session.execute(
            select(func.count()).where(AuditEvent.action == "flow.started")).scalar_one()
    assert inbound == 1 and started == 1


def test_flow_routing_question_mid_flow_then_answer(engine: Engine, services: Services) -> None:
    assert send(engine, "テスト開始")[0].text == "お名前は？"
    mid = send(engine, "専門家派遣とは何ですか？")
    assert mid[-1].text == "お名前は？", "the flow asks its question again after the answer"
    assert len(mid) >= 2, "the question got an answer (or an honest not-sure) first"
    done = send(engine, "山田")
    assert done[0].text == "山田様、ありがとうございました。"
    with services.db.session() as session:
        conversation = session.execute(select(Conversation)).scalar_one()
        assert conversation.active_flow is None


def test_leave_flow_with_yameru(engine: Engine, services: Services) -> None:
    send(engine, "テスト開始")
    replies = send(engine, "やめる")
    assert "テスト手続きを中断しました" in replies[0].text
    with services.db.session() as session:
        assert session.execute(select(Conversation)).scalar_one().active_flow is None
        actions = list(session.execute(select(AuditEvent.action).order_by(AuditEvent.id)).scalars())
        assert actions[-2:] == ["flow.started", "flow.left"]
        assert verify_chain(session).ok


def test_leave_without_flow_and_fullwidth_command(engine: Engine) -> None:
    assert "進行中の手続きはありません" in send(engine, "中断")[0].text
    assert "窓口" in send(engine, "／ｓｔａｒｔ")[0].text  # NFKC: full-width /start


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "空"),
        ("   ", "空"),
        ("😀🙏", "文章で入力"),
        ("/unknowncmd", "コマンドはありません"),
        ("あ" * 5000, "長すぎます"),
    ],
)
def test_bad_input_gets_a_polite_japanese_message(engine: Engine, text: str, expected: str) -> None:
    assert expected in send(engine, text)[0].text


def test_unknown_choice_is_explained(engine: Engine) -> None:
    assert "選択肢" in send(engine, choice="nope:gone")[0].text


def test_handler_error_is_answered_politely_and_message_kept(engine: Engine, services: Services) -> None:
    class Broken(Handler):
        name = "broken"
        triggers = ("こわれる",)

        def on_command(self, turn: Turn) -> list[Reply]:
            raise RuntimeError("boom")

    services.install(Capability(name="broken", handler=Broken()))
    replies = Engine(services).handle(InboundMessage(channel="web", external_user_id="x", text="こわれる"))
    assert "問題が発生しました" in replies[0].text
    with services.db.session() as session:
        texts = list(session.execute(select(Message.text).order_by(Message.id)).scalars())
    assert texts[0] == "こわれる"
