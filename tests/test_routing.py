"""Routing bugs of issue 19: who gets a message inside a flow, what a mid-flow answer is stored as, roles,
and flows that are left alone."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from bot.capability import Capability
from bot.engine import Engine
from bot.handler import Handler, Turn
from bot.messages import InboundMessage, Option, Reply
from bot.services import Services
from bot.storage.models import ChannelIdentity, Conversation, Message, Person, Role, utcnow
from handlers.escalation.models import Ticket
from handlers.hearing.models import FormResponse


def send(engine: Engine, text: str | None = None, *, user: str = "r-1", choice: str | None = None) -> list[Reply]:
    return engine.handle(InboundMessage(channel="web", external_user_id=user, text=text, choice=choice))


def conversation_of(services: Services, user: str) -> Conversation:
    with services.db.session() as session:
        return session.execute(select(Conversation).join(Person).join(ChannelIdentity)
                               .where(ChannelIdentity.external_user_id == user)).scalar_one()


def test_wakaranai_inside_the_hearing_sheet_stays_in_the_form(services: Services) -> None:
    engine = Engine(services)
    send(engine, "ヒアリング開始")
    replies = send(engine, "株式会社わからない")
    assert "法人番号" in replies[-1].text
    replies = send(engine, "わからない")  # the 法人番号 prompt itself invites it
    assert "スキップ" in replies[0].text and "法人番号" in replies[-1].text
    assert conversation_of(services, "r-1").active_flow == "hearing"
    with services.db.session() as session:
        assert session.execute(select(Ticket)).first() is None
        response = session.execute(select(FormResponse)).scalar_one()
        assert response.state["cursor"] == "corporate_number" and response.status == "in_progress"
    replies = send(engine, "スキップ")
    assert "【3/33】" in replies[-1].text


def test_thumbs_down_after_a_mid_flow_faq_answer_opens_a_ticket_with_that_question(
        sample_kb_services: Services) -> None:
    engine = Engine(sample_kb_services)
    user = "r-down"
    send(engine, "ヒアリング開始", user=user)
    replies = send(engine, "謝金はいくらですか？", user=user)
    assert "5,280円" in replies[0].text and "【1/33】" in replies[-1].text
    replies = send(engine, choice="feedback:down", user=user)
    assert "どこが違いましたか" in replies[0].text  # issue 21: one optional step before the ticket
    replies = send(engine, choice="contact:skip", user=user)
    assert "受付番号：T-" in replies[0].text
    with sample_kb_services.db.session() as session:
        ticket = session.execute(select(Ticket).join(Person).join(ChannelIdentity)
                                 .where(ChannelIdentity.external_user_id == user)).scalar_one()
        assert ticket.question == "謝金はいくらですか？" and ticket.reason == "not_helpful"
        handlers = list(session.execute(select(Message.handler).where(Message.direction == "out")
                                        .order_by(Message.id)).scalars())
    assert "question" in handlers  # the FAQ answer is stored as an answer, the re-ask as the flow's


class ExpertsOnly(Handler):
    """A capability only experts may use: a command, a menu button and free-text answers."""

    name = "experts_only"
    triggers = ("専門家メニュー",)
    roles = frozenset({Role.EXPERT.value})
    question_priority = 1

    def on_command(self, turn: Turn) -> list[Reply]:
        return [Reply(text="専門家の方向けのメニューです")]

    def answer(self, turn: Turn) -> list[Reply] | None:
        return [Reply(text="専門家向けの回答です")]

    def menu_options(self, locale: str, person: Person | None = None, program: object = None) -> list[Option]:
        return [Option(label="専門家向け", value="experts_only:menu")]


def test_a_role_restricted_handler_refuses_other_roles(services: Services) -> None:
    services.install(Capability(name="experts_only", handler=ExpertsOnly()))
    engine = Engine(services)
    assert "権限がありません" in send(engine, "専門家メニュー", user="sme")[0].text
    assert "専門家向け" not in send(engine, "助成金の締切はいつですか", user="sme")[0].text
    assert all(o.label != "専門家向け" for o in send(engine, "メニュー", user="sme")[0].options)
    with services.db.session() as session:
        person = session.execute(select(Person).join(ChannelIdentity)
                                 .where(ChannelIdentity.external_user_id == "expert")).scalar_one_or_none()
        assert person is None
    send(engine, "メニュー", user="expert")
    with services.db.session() as session:
        session.execute(update(Person).where(Person.id == select(ChannelIdentity.person_id).where(
            ChannelIdentity.external_user_id == "expert").scalar_subquery()).values(role=Role.EXPERT.value))
    assert send(engine, "専門家メニュー", user="expert")[0].text == "専門家の方向けのメニューです"
    assert send(engine, "助成金の締切はいつですか", user="expert")[0].text == "専門家向けの回答です"
    assert any(o.label == "専門家向け" for o in send(engine, "メニュー", user="expert")[0].options)


def test_a_stale_flow_expires_politely_and_the_message_is_handled_afresh(services: Services) -> None:
    engine = Engine(services)
    send(engine, "ヒアリング開始", user="stale")
    send(engine, "株式会社放置", user="stale")
    conversation = conversation_of(services, "stale")
    assert conversation.active_flow == "hearing"
    stale = utcnow() - timedelta(minutes=services.settings.chat.flow_timeout_minutes + 1)
    with services.db.session() as session:
        session.execute(update(Message).where(Message.conversation_id == conversation.id).values(created_at=stale))
    replies = send(engine, "メニュー", user="stale")
    texts = [r.text for r in replies]
    assert any("1問目まで保存しました" in t for t in texts)  # the form's own on_leave: the draft is kept
    assert any("しばらくお返事がなかったため" in t and "ヒアリングシート" in t for t in texts)
    assert "窓口" in replies[-1].text  # and the message itself is answered (the menu)
    assert conversation_of(services, "stale").active_flow is None
    # Within the limit nothing expires.
    send(engine, "ヒアリング開始", user="stale")
    assert conversation_of(services, "stale").active_flow == "hearing"
    assert "【3/33】" in send(engine, "スキップ", user="stale")[-1].text  # resumed at 2, skipped to 3
