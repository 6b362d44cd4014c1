"""Escalation from the user's side, call-center hours, the SLA, and the dashboard figures."""

from __future__ import annotations

from functools import partial
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from handlers.escalation import tickets
from handlers.escalation.business_hours import BusinessCalendar
from bot.engine import Engine
from bot.flow import StepFlow
from bot.i18n import t
from bot.messages import Attachment, InboundMessage, Reply
from bot.outbox import replies_of
from bot.services import Services
from bot.settings import Settings
from handlers.escalation.staff import create as create_staff
from bot.storage.models import ChannelIdentity, Conversation, OutboundMessage, StaffNotification
from handlers.escalation.models import Ticket, TicketMessage
from tests.conftest import send as shared_send

JST = timezone(timedelta(hours=9))
CALENDAR = BusinessCalendar.from_settings(Settings())


def jst(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=JST)


send = partial(shared_send, timestamp=jst(2026, 11, 20, 11))  # inside business hours unless said


@pytest.mark.parametrize(("moment", "is_open", "next_opening"), [
    (jst(2026, 11, 20, 16, 59), True, jst(2026, 11, 20, 16, 59)),   # Friday 16:59: open
    (jst(2026, 11, 20, 17, 0), False, jst(2026, 11, 24, 10)),        # 17:00 Friday -> Tuesday (Mon 11/23 holiday)
    (jst(2026, 11, 27, 18, 30), False, jst(2026, 11, 30, 10)),       # Friday evening -> Monday
    (jst(2026, 11, 23, 11, 0), False, jst(2026, 11, 24, 10)),        # 勤労感謝の日
    (jst(2026, 12, 28, 16, 0), True, jst(2026, 12, 28, 16, 0)),      # last day before the break
    (jst(2026, 12, 28, 17, 0), False, jst(2027, 1, 4, 10)),          # 12/28 evening -> 1/4
    (jst(2027, 1, 4, 9, 59), False, jst(2027, 1, 4, 10)),
    (jst(2027, 1, 4, 10, 0), True, jst(2027, 1, 4, 10)),
])
def test_business_hours_at_the_boundaries(moment: datetime, is_open: bool, next_opening: datetime) -> None:
    assert CALENDAR.is_open(moment) is is_open
    assert CALENDAR.next_opening(moment) == next_opening


def test_business_minutes_skip_nights_weekends_and_extra_closed_days() -> None:
    friday_evening = jst(2026, 11, 27, 16, 50)
    monday_morning = jst(2026, 11, 30, 10, 20)
    assert CALENDAR.business_minutes_between(friday_evening, monday_morning) == pytest.approx(30)
    closed = BusinessCalendar.from_settings(Settings(hours={"extra_closed_days": [date(2026, 11, 30)]}))
    assert closed.business_minutes_between(friday_evening, monday_morning) == pytest.approx(10)
    assert closed.next_opening(jst(2026, 11, 27, 17)) == jst(2026, 12, 1, 10)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


@pytest.fixture
def engine(sample_kb_services: Services) -> Engine:
    return Engine(sample_kb_services)


def ticket_of(services: Services, user_question: str) -> Ticket:
    with services.db.session() as session:
        ticket = session.execute(select(Ticket).where(Ticket.question == user_question)).scalar_one()
        session.expunge(ticket)
        return ticket


def test_unsure_answer_then_the_offered_button_opens_a_ticket_with_context(engine: Engine,
                                                                           sample_kb_services: Services) -> None:
    question = "明日の東京の天気はどうですか？"
    replies = send(engine, question, user="esc-1")
    assert replies[0].meta["outcome"] == "outside"  # not answered, whatever the wording
    declined = replies[0].text
    replies = send(engine, choice="contact:human", user="esc-1")
    assert "担当者におつなぎします。受付番号：T-" in replies[0].text
    ticket = ticket_of(sample_kb_services, question)
    assert ticket.reason == "not_confident" and ticket.status == "open" and ticket.channel == "web"
    said = [(m["from"], m["text"]) for m in ticket.transcript]
    assert ("user", question) in said and ("bot", declined) in said
    # While the ticket is open, what the user types goes to staff, not to the bot.
    assert send(engine, "急ぎでお願いします", user="esc-1")[0].text == "担当者にお伝えしました。"
    with sample_kb_services.db.session() as session:
        texts = session.execute(select(TicketMessage.text).where(TicketMessage.ticket_id == ticket.id)).scalars().all()
        kinds = session.execute(select(StaffNotification.kind).where(
            StaffNotification.subject_type == "ticket", StaffNotification.subject_id == str(ticket.id))).scalars().all()
    assert texts == [question, "急ぎでお願いします"]
    assert kinds == ["ticket.created", "ticket.user_message"]
    # The user can withdraw it.
    assert "取り消しました" in send(engine, choice=f"ticket:cancel:{ticket.id}", user="esc-1")[0].text
    assert ticket_of(sample_kb_services, question).status == "closed"


def test_outside_hours_the_user_is_told_when_staff_will_answer(engine: Engine, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    monkeypatch.setattr(engine.services.settings.escalation, "contact", "事務局 03-1234-5678")
    send(engine, "専門家派遣は年に何回まで使えますか？", timestamp=jst(2026, 11, 20, 17, 30), user="esc-2")
    asked = send(engine, "👎", timestamp=jst(2026, 11, 20, 17, 31), user="esc-2")
    assert "どこが違いましたか" in asked[0].text and asked[0].options[0].value == "contact:skip"
    replies = send(engine, choice="contact:skip", timestamp=jst(2026, 11, 20, 17, 31), user="esc-2")
    assert "ただいま受付時間外です" in replies[0].text and "11月24日（火）10:00以降" in replies[0].text
    # The phone has the same hours as the staff: a closed line is never suggested.
    assert "電話" not in replies[0].text and "03-1234-5678" not in replies[0].text


def test_inside_hours_the_configured_phone_reads_naturally(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.services.settings.escalation, "contact", "事務局 03-1234-5678")
    replies = send(engine, "担当者と話したい", user="esc-2b")
    replies = send(engine, "申請の締切を延ばせるか相談したい", user="esc-2b")
    text = replies[0].text
    assert "お急ぎの場合は、お電話でもお問い合わせいただけます。事務局 03-1234-5678（平日 10:00〜17:00、土日祝日・年末年始を除く）" in text
    assert "（（" not in text and "））" not in text and "）（" not in text
    monkeypatch.setattr(engine.services.settings.escalation, "contact", "")
    send(engine, "担当者と話したい", user="esc-2c")
    assert "電話" not in send(engine, "別の相談です", user="esc-2c")[0].text  # no number configured: no phone offered


def test_a_ticket_after_a_thumbs_up_never_carries_that_answered_question(engine: Engine,
                                                                         sample_kb_services: Services) -> None:
    answered = "専門家派遣は年に何回まで使えますか？"
    replies = send(engine, answered, user="esc-up")
    assert [o.value for o in replies[0].options] == ["feedback:up", "feedback:down"]
    send(engine, choice="feedback:up", user="esc-up")
    asked = send(engine, "担当者と話したい", user="esc-up")
    assert "担当者にお伝えする内容" in asked[0].text  # asked in one step what it is about
    send(engine, "交通費の精算方法を知りたい", user="esc-up")
    with sample_kb_services.db.session() as session:
        person_id = session.execute(select(ChannelIdentity.person_id).where(
            ChannelIdentity.external_user_id == "esc-up")).scalar_one()
        mine = session.execute(select(Ticket).where(Ticket.person_id == person_id)).scalars().all()
        assert [t.question for t in mine if t.question == answered] == []
        ticket = next(t for t in mine if t.question == "交通費の精算方法を知りたい")
        assert ticket.reason == "asked_human"
        staff = create_staff(session, "up-staff", "上田", "correct horse battery up")
        tickets.staff_reply(session, ticket, staff, "領収書を添えて月末に申請してください。", via="console")
        candidate = tickets.make_faq_candidate(session, ticket, staff)
        assert candidate.question == "交通費の精算方法を知りたい"  # paired with its own answer, not the 👍 one


def test_thumbs_down_after_an_answer_escalates_as_not_helpful(engine: Engine, sample_kb_services: Services) -> None:
    question = "謝金はいくらですか？"
    replies = send(engine, question, user="esc-3")
    assert [o.value for o in replies[0].options] == ["feedback:up", "feedback:down"]
    asked = send(engine, choice="feedback:down", user="esc-3")
    assert "どこが違いましたか" in asked[0].text  # optional: one step, skippable
    assert ticket_of_or_none(sample_kb_services, question) is None
    send(engine, "金額ではなく支払い時期を知りたかった", user="esc-3")
    ticket = ticket_of(sample_kb_services, question)
    assert ticket.reason == "not_helpful" and ticket.sources  # the sources the bot showed travel with it
    with sample_kb_services.db.session() as session:
        texts = session.execute(select(TicketMessage.text).where(TicketMessage.ticket_id == ticket.id)).scalars().all()
    assert texts == [question, "【回答のどこが違ったか】金額ではなく支払い時期を知りたかった"]


def ticket_of_or_none(services: Services, user_question: str) -> Ticket | None:
    with services.db.session() as session:
        return session.execute(select(Ticket.id).where(Ticket.question == user_question)).scalar_one_or_none()


def test_asking_for_a_person_without_a_question_asks_what_to_pass_on(engine: Engine,
                                                                    sample_kb_services: Services) -> None:
    replies = send(engine, "担当者と話したい", user="esc-4")
    assert "担当者にお伝えする内容" in replies[0].text
    replies = send(engine, "申請書の書き方を相談したい", user="esc-4")
    assert "受付番号：T-" in replies[0].text
    assert ticket_of(sample_kb_services, "申請書の書き方を相談したい").reason == "asked_human"
    again = send(engine, "担当者に問い合わせる", user="esc-4")
    assert "受付済みです" in again[0].text


def test_staff_answer_resolution_and_survey_reach_the_user(engine: Engine, sample_kb_services: Services) -> None:
    send(engine, "担当者と話したい", user="esc-5")
    send(engine, "交付決定の時期を知りたい", user="esc-5")
    ticket = ticket_of(sample_kb_services, "交付決定の時期を知りたい")
    with sample_kb_services.db.session() as session:
        staff = create_staff(session, "suzuki", "鈴木", "correct horse battery")
        other = create_staff(session, "tanaka", "田中", "correct horse battery 2")
        tickets.claim(session, ticket.id, staff)
        with pytest.raises(tickets.TicketError) as error:
            tickets.claim(session, ticket.id, other)
        assert error.value.reason == "claimed_by_other" and error.value.who == "鈴木"
        tickets.staff_reply(session, session.get(Ticket, ticket.id), staff, "12月上旬の予定です。", via="console")
    with sample_kb_services.db.session() as session:
        rows = session.execute(select(OutboundMessage).where(OutboundMessage.external_user_id == "esc-5")).scalars()
        answer = [r for row in rows for r in replies_of(row)][-1]
    assert "【担当者からの回答】" in answer.text and "12月上旬の予定です。" in answer.text
    assert answer.options[0].value == f"ticket:done:{ticket.id}"
    assert "解決のご連絡" in send(engine, choice=answer.options[0].value, user="esc-5")[0].text
    with sample_kb_services.db.session() as session:
        rows = session.execute(select(OutboundMessage).where(OutboundMessage.external_user_id == "esc-5")
                               .order_by(OutboundMessage.id)).scalars()
        survey = [r for row in rows for r in replies_of(row)][-1]
    assert "いかがでしたか" in survey.text and len(survey.options) == 5
    assert "ご評価ありがとうございました" in send(engine, choice=f"ticket:rate:{ticket.id}:5", user="esc-5")[0].text
    done = ticket_of(sample_kb_services, "交付決定の時期を知りたい")
    assert done.status == "resolved" and done.satisfaction == 5 and done.first_response_at is not None


def test_users_cannot_act_on_tickets_that_are_not_theirs(engine: Engine, sample_kb_services: Services) -> None:
    send(engine, "担当者と話したい", user="esc-6")
    send(engine, "他人に見られたくない相談", user="esc-6")
    ticket = ticket_of(sample_kb_services, "他人に見られたくない相談")
    for choice in (f"ticket:cancel:{ticket.id}", f"ticket:done:{ticket.id}", f"ticket:rate:{ticket.id}:1"):
        assert send(engine, choice=choice, user="intruder")[0].text == "この操作はできません。"
    assert "その選択肢" in send(engine, choice=f"ticket:claim:{ticket.id}", user="intruder")[0].text
    assert ticket_of(sample_kb_services, "他人に見られたくない相談").status == "open"


def test_unclaimed_tickets_become_overdue_in_business_time_only(services: Services) -> None:
    engine = Engine(services)
    send(engine, "担当者と話したい", timestamp=jst(2026, 11, 20, 16, 40), user="sla")
    send(engine, "至急の相談です", timestamp=jst(2026, 11, 20, 16, 41), user="sla")
    with services.db.session() as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        ticket.created_at = utc(jst(2026, 11, 20, 16, 41))
    with services.db.session() as session:
        assert tickets.flag_overdue(session, CALENDAR, 30, now=utc(jst(2026, 11, 23, 12))) == []  # holiday Monday
        flagged = tickets.flag_overdue(session, CALENDAR, 30, now=utc(jst(2026, 11, 24, 10, 12)))
        assert [t.id for t in flagged] == [ticket.id]
        again = tickets.flag_overdue(session, CALENDAR, 30, now=utc(jst(2026, 11, 24, 11)))
        assert again == []  # flagged (and re-posted) once
        kinds = session.execute(select(StaffNotification.kind)).scalars().all()
    assert kinds.count("ticket.overdue") == 1


def test_dashboard_figures(services: Services) -> None:
    engine = Engine(services)
    with services.db.session() as session:
        staff = create_staff(session, "sato", "佐藤", "correct horse battery")
    for user in ("d1", "d2", "d3"):
        send(engine, "担当者と話したい", user=user)
        send(engine, f"{user}の相談", user=user)
    with services.db.session() as session:
        rows = session.execute(select(Ticket).order_by(Ticket.id)).scalars().all()
        for minutes, ticket in zip((10, 30), rows[:2], strict=False):
            ticket.created_at = ticket.created_at - timedelta(minutes=minutes)
            tickets.staff_reply(session, ticket, staff, "回答です", via="console")
            tickets.resolve(session, ticket, actor="sato")
            ticket.satisfaction = 4
    with services.db.session() as session:
        figures = tickets.dashboard(session)
    assert sum(count for _, count in figures.tickets_per_day) == 3
    assert figures.median_first_response_min == pytest.approx(20, abs=1)
    assert figures.open_count == 1 and figures.satisfaction_avg == 4
    assert ("d1の相談", 1) in figures.top_unanswered


def flow_step(services: Services, user: str) -> str | None:
    with services.db.session() as session:
        conversation = session.execute(select(Conversation).join(ChannelIdentity, ChannelIdentity.person_id ==
                                                                 Conversation.person_id)
                                       .where(ChannelIdentity.external_user_id == user)).scalar_one()
        return (conversation.flow_state or {}).get("step") if conversation.active_flow == "escalation" else None


def test_every_escalation_step_asks_its_question_again_after_a_message_that_is_not_its_answer(
        engine: Engine, sample_kb_services: Services) -> None:
    """Escalation is a step table too: a question typed at a step is that step's answer (what to pass on), not one
    for the FAQ; a message that is no answer (a photo without words) brings the step's own prompt back."""
    def photo(user: str) -> list[Reply]:
        return engine.handle(InboundMessage(channel="web", external_user_id=user, timestamp=utc(jst(2026, 11, 20, 11)),
                                            attachments=[Attachment(kind="image", url="https://example.com/a.jpg")]))

    seen = set()
    send(engine, "担当者と話したい", user="esc-steps")
    seen.add(flow_step(sample_kb_services, "esc-steps"))
    assert photo("esc-steps")[-1].text == t("escalation_describe", "ja")
    replies = send(engine, "謝金の振込日はいつですか？", user="esc-steps")
    assert "受付番号：T-" in replies[0].text  # the question is what staff get, the FAQ does not answer it
    ticket = ticket_of(sample_kb_services, "謝金の振込日はいつですか？")
    seen.add(flow_step(sample_kb_services, "esc-steps"))
    again = photo("esc-steps")[-1]
    assert "受付済みです" in again.text and [o.value for o in again.options] == [f"ticket:cancel:{ticket.id}"]
    send(engine, choice=f"ticket:cancel:{ticket.id}", user="esc-steps")

    send(engine, "謝金はいくらですか？", user="esc-wrong")
    send(engine, choice="feedback:down", user="esc-wrong")
    seen.add(flow_step(sample_kb_services, "esc-wrong"))
    asked = photo("esc-wrong")[-1]
    assert asked.text == t("escalation_what_wrong", "ja") and [o.value for o in asked.options] == ["contact:skip"]
    assert "受付番号：T-" in send(engine, "支払い時期はいつですか？", user="esc-wrong")[0].text
    handler = engine.handlers["escalation"]
    assert isinstance(handler, StepFlow) and seen == set(handler.steps()) == {"describe", "what_wrong", "relay"}
