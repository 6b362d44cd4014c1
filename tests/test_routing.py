"""Routing bugs of issue 19: who gets a message inside a flow, what a mid-flow answer is stored as, roles,
and flows that are left alone."""

from __future__ import annotations

from functools import partial
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from bot.capability import Capability
from bot.engine import Engine
from bot.handler import Handler, Turn
from bot.messages import Option, Reply
from bot.services import Services
from bot.storage.models import ChannelIdentity, Conversation, Message, Person, Role, utcnow
from handlers.accounts import link_codes
from handlers.accounts.registry import add_person
from handlers.escalation.models import Ticket
from handlers.hearing.models import FormResponse
from tests.conftest import make_settings
from tests.conftest import send as shared_send

send = partial(shared_send, user="r-1")


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


# ----------------------------------------------------------------------------------------------- flow first
FOLLOW_UP_FORM = """\
id: follow-up
version: 1
title: 支援後アンケート
description: 支援のあとのご希望を伺います。
completion_message: ご回答ありがとうございました。
sections:
  - id: wishes
    title: ご希望
    questions:
      - id: name
        label: お名前
        prompt: お名前を教えてください。
        type: text
      - id: next_step
        label: 今後のご希望
        prompt: 今後のご希望を選んでください。
        type: single_choice
        options: [資料を送ってほしい, 担当者と話したい, 終了]
      - id: remarks
        label: ご要望
        prompt: そのほかご要望があれば教えてください。
        type: text
        required: false
"""


def response_of(services: Services, user: str) -> FormResponse:
    with services.db.session() as session:
        return session.execute(select(FormResponse).join(Person).join(ChannelIdentity)
                               .where(ChannelIdentity.external_user_id == user)
                               .order_by(FormResponse.id.desc()).limit(1)).scalar_one()


def follow_up_services(tmp_path: Path, form: str) -> Services:
    """Services with one program (not the sample knowledge base) whose hearing form is `form`."""
    forms = tmp_path / "forms"
    forms.mkdir(parents=True)
    (forms / "follow_up.yaml").write_text(form, encoding="utf-8")
    (tmp_path / "docs").mkdir()
    return Services.create(make_settings(tmp_path, knowledge__paths=[tmp_path / "docs"], hearing__forms_dirs=[forms],
                                         hearing__form="follow-up"))


def test_a_form_s_step_table_belongs_to_its_services(tmp_path: Path) -> None:
    """Two installations in one process with the same form id and version but other questions (a form edited
    without a new version, two test setups): each walks its own questions, not a table cached for the other."""
    first = follow_up_services(tmp_path / "a", FOLLOW_UP_FORM)
    send(Engine(first), "ヒアリング開始")
    assert "今後のご希望" in send(Engine(first), "窓口 一郎")[-1].text
    edited = FOLLOW_UP_FORM.replace("id: next_step", "id: wish").replace("今後のご希望を選んでください",
                                                                          "ご希望を一つ選んでください")
    second = follow_up_services(tmp_path / "b", edited)
    engine = Engine(second)
    send(engine, "ヒアリング開始")
    assert "ご希望を一つ選んでください" in send(engine, "窓口 二郎")[-1].text
    assert "ご要望" in send(engine, "1")[-1].text
    assert response_of(second, "r-1").answers == {"name": "窓口 二郎", "wish": "資料を送ってほしい"}
    first.close()
    second.close()


def test_a_command_looking_answer_is_the_flows_when_its_step_expects_it(tmp_path: Path) -> None:
    """The flow gets the message first: an option named like a command (「担当者と話したい」) or a leave word
    (「終了」), typed or by its number, answers the question that offers it; the same words elsewhere in the form
    are still the command and the leave word."""
    services = follow_up_services(tmp_path, FOLLOW_UP_FORM)
    engine = Engine(services)
    send(engine, "ヒアリング開始")
    assert "窓口" in send(engine, "メニュー")[0].text  # a free-text step expects no command: the menu
    replies = send(engine, "窓口 太郎")  # ... and the flow is still there
    assert "今後のご希望" in replies[-1].text
    for typed, value in (("担当者と話したい", "担当者と話したい"), ("終了", "終了"), ("2", "担当者と話したい")):
        replies = send(engine, typed)
        assert "ご要望" in replies[-1].text, (typed, replies[-1].text)
        assert response_of(services, "r-1").answers["next_step"] == value
        assert conversation_of(services, "r-1").active_flow == "hearing"
        send(engine, "戻る")
    with services.db.session() as session:
        assert session.execute(select(Ticket)).first() is None
    send(engine, "1")
    # At the free-text step the same words are the command and the leave word again.
    replies = send(engine, "担当者と話したい")
    assert "担当者にお伝えする内容" in replies[0].text or "受付番号" in replies[0].text
    assert conversation_of(services, "r-1").active_flow == "escalation"
    assert response_of(services, "r-1").status == "in_progress"
    services.close()


def test_a_leave_word_mid_flow_still_leaves_with_on_leave(services: Services) -> None:
    engine = Engine(services)
    send(engine, "ヒアリング開始")
    send(engine, "株式会社中断")
    send(engine, "スキップ")
    send(engine, "部品加工")
    replies = send(engine, "終了")  # 業種 (a choice step) has no option 「終了」: the leave word
    assert "3問目まで保存しました" in replies[0].text and "中断しました" in replies[1].text
    assert conversation_of(services, "r-1").active_flow is None
    send(engine, "ヒアリング開始")
    replies = send(engine, choice="flow:leave")  # the leave button
    assert "保存しました" in replies[0].text and "中断しました" in replies[1].text
    assert response_of(services, "r-1").answers["business_summary"] == "部品加工"


def test_a_link_code_sent_mid_hearing_still_links(services: Services) -> None:
    """The last attempt at flow-first routing took a link code for the company name (a free-text answer) or
    re-asked the 法人番号 with it; the flow declines it and the account links, the form waiting where it was."""
    engine = Engine(services)
    with services.db.session() as session:
        first = link_codes.issue(session, "link", hours=1, person_id=add_person(session, "applicant", "連携 一郎").id)
        second = link_codes.issue(session, "link", hours=1, person_id=add_person(session, "applicant", "連携 二郎").id)
    send(engine, "ヒアリング開始", user="code-1")
    asked = send(engine, first, user="code-1")[0]  # at 企業名, a free-text step
    assert "連携 一郎様のアカウントに連携します" in asked.text
    assert "連携しました" in send(engine, choice=asked.options[0].value, user="code-1")[0].text
    assert "company_name" not in response_of(services, "code-1").answers
    assert "法人番号" in send(engine, "株式会社連携", user="code-1")[-1].text

    send(engine, "ヒアリング開始", user="code-2")
    send(engine, "株式会社二番", user="code-2")
    asked = send(engine, second.lower(), user="code-2")[0]  # at 法人番号, a step that reads codes of digits
    assert "連携 二郎様のアカウントに連携します" in asked.text
    assert "連携しました" in send(engine, choice=asked.options[0].value, user="code-2")[0].text
    assert "【3/33】" in send(engine, "スキップ", user="code-2")[-1].text
    response = response_of(services, "code-2")
    assert response.answers == {"company_name": "株式会社二番", "corporate_number": None}
