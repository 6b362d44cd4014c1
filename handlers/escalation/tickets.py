"""Tickets: a user's question in the hands of call-center staff, from hand-off to resolution.

Shared by the chat handler (the user's side), the Slack staff channel and
the web console (the staff side), so every path changes a ticket the same
way: each change is audited, each message to the user goes through the
outbox to their own channel, and the staff side is told through the
staff-notification outbox.
"""

from __future__ import annotations

from pathlib import Path
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, true, update
from sqlalchemy.orm import Session

from handlers.escalation.business_hours import BusinessCalendar
from bot.i18n import add_locale_dir, t
from bot.jst import jst_date
from bot.messages import Option, Reply
from bot.notify import notify_staff
from bot.outbox import NoChannel, queue, send_to_person
from bot.references import ticket_number
from bot.storage import audit
from bot.storage.models import ChannelIdentity, Conversation, FaqCandidate, Message, Person, utcnow
from handlers.escalation.models import StaffAccount, Ticket, TicketMessage
from bot.text import normalize
from bot.programs import conversation_in, program_in

if TYPE_CHECKING:
    from bot.services import Services

add_locale_dir(Path(__file__).resolve().parent / "locales")

OPEN_STATUSES = ("open", "claimed", "answered")
#: The one set of status labels staff see (Slack, the console).
STATUS_LABELS = {"open": "未対応", "claimed": "対応中", "answered": "回答済み", "resolved": "解決", "closed": "取り下げ"}
TRANSCRIPT_MESSAGES = 12


class TicketError(ValueError):
    """claimed_by_other | not_open | no_answer (an i18n key suffix)."""
    def __init__(self, reason: str, who: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.who = who


def number(ticket_id: int) -> str:
    return ticket_number(ticket_id)


def transcript(session: Session, conversation_id: int, limit: int = TRANSCRIPT_MESSAGES) -> list[dict[str, Any]]:
    """The last messages of the conversation, oldest first, as staff will read them."""
    rows = list(session.execute(select(Message).where(Message.conversation_id == conversation_id)
                                .order_by(Message.id.desc()).limit(limit)).scalars())
    return [{"from": "user" if m.direction == "in" else "bot", "text": m.text or (m.payload or {}).get("choice", ""),
             "at": m.created_at.isoformat()} for m in reversed(rows)]


def open_ticket_of(session: Session, person_id: int) -> Ticket | None:
    return session.execute(select(Ticket).where(Ticket.person_id == person_id, Ticket.status.in_(OPEN_STATUSES))
                           .order_by(Ticket.id.desc()).limit(1)).scalar_one_or_none()


def create(session: Session, person: Person, *, conversation_id: int | None, channel: str, reason: str,
           question: str, sources: list[dict[str, Any]] | None = None, program: str | None = None) -> Ticket:
    ticket = Ticket(person_id=person.id, conversation_id=conversation_id, channel=channel, reason=reason,
                    program=program,
                    question=question[:4000], role=person.role, company_id=person.company_id, status="open",
                    transcript=transcript(session, conversation_id) if conversation_id else [],
                    sources=sources or [])
    session.add(ticket)
    session.flush()
    if question:
        session.add(TicketMessage(ticket_id=ticket.id, author="user", via=channel, text=question[:4000]))
    audit.record(session, "ticket.created", actor_person_id=person.id, subject_type="ticket", subject_id=ticket.id,
                 data={"reason": reason, "channel": channel})
    notify_staff(session, "ticket.created", f"{number(ticket.id)} {question[:60]}", question,
                 subject_type="ticket", subject_id=ticket.id, actor_person_id=person.id,
                 data={"ticket_id": ticket.id, "program": program})
    return ticket


def add_user_message(session: Session, ticket: Ticket, text: str, channel: str) -> None:
    """A user's follow-up: kept on the ticket and passed to staff (into the same Slack thread)."""
    session.add(TicketMessage(ticket_id=ticket.id, author="user", via=channel, text=text[:4000]))
    if not ticket.question:
        ticket.question = text[:4000]
    session.flush()
    notify_staff(session, "ticket.user_message", f"{number(ticket.id)} 利用者からの追加メッセージ", text,
                 subject_type="ticket", subject_id=ticket.id, actor_person_id=ticket.person_id,
                 data={"ticket_id": ticket.id})


def claim(session: Session, ticket_id: int, staff: StaffAccount) -> Ticket:
    """Take a ticket; a single conditional UPDATE, so two staff can never both get it."""
    now = utcnow()
    result = session.execute(update(Ticket).where(Ticket.id == ticket_id, Ticket.status == "open",
                                                  Ticket.assignee_id.is_(None))
                             .values(status="claimed", assignee_id=staff.id, claimed_at=now))
    ticket = session.get(Ticket, ticket_id, populate_existing=True)
    if ticket is None:
        raise TicketError("not_found")
    if result.rowcount == 0:  # type: ignore[attr-defined]
        if ticket.assignee_id == staff.id:
            return ticket
        if ticket.assignee is not None:
            raise TicketError("claimed_by_other", ticket.assignee.display_name)
        raise TicketError("not_open")
    audit.record(session, "ticket.claimed", subject_type="ticket", subject_id=ticket.id,
                 data={"staff": staff.username})
    return ticket


def staff_reply(session: Session, ticket: Ticket, staff: StaffAccount, text: str, via: str,
                platform_id: str | None = None) -> bool:
    """Relay a staff answer to the user on their own channel. False if this Slack event was relayed already."""
    if ticket.status not in OPEN_STATUSES:
        raise TicketError("not_open")
    if platform_id and session.execute(select(TicketMessage.id).where(
            TicketMessage.platform_id == platform_id)).first():
        return False
    if ticket.assignee_id is None:
        ticket.assignee_id = staff.id
        ticket.claimed_at = utcnow()
    session.add(TicketMessage(ticket_id=ticket.id, author="staff", staff_id=staff.id, via=via, text=text[:4000],
                              platform_id=platform_id))
    ticket.status = "answered"
    ticket.first_response_at = ticket.first_response_at or utcnow()
    person = session.get(Person, ticket.person_id)
    locale = person.locale if person else "ja"
    reply = Reply(text=t("ticket_staff_answer", locale, number=number(ticket.id), text=text),
                  options=[Option(label=t("ticket_resolved_button", locale), value=f"ticket:done:{ticket.id}")])
    _tell_user(session, ticket, reply)
    audit.record(session, "ticket.answered", subject_type="ticket", subject_id=ticket.id,
                 data={"staff": staff.username, "via": via})
    session.flush()
    return True


def resolve(session: Session, ticket: Ticket, actor: str) -> None:
    """Done: the user gets the one-question satisfaction survey."""
    if ticket.status not in OPEN_STATUSES:
        raise TicketError("not_open")
    ticket.status = "resolved"
    ticket.resolved_at = utcnow()
    person = session.get(Person, ticket.person_id)
    locale = person.locale if person else "ja"
    survey = Reply(text=t("ticket_survey", locale, number=number(ticket.id)),
                   options=[Option(label=label, value=f"ticket:rate:{ticket.id}:{score}")
                            for score, label in ((5, "5 とても満足"), (4, "4"), (3, "3"), (2, "2"), (1, "1 不満"))])
    _tell_user(session, ticket, survey)
    audit.record(session, "ticket.resolved", subject_type="ticket", subject_id=ticket.id, data={"by": actor})
    notify_staff(session, "ticket.resolved", f"{number(ticket.id)} 解決", "", subject_type="ticket",
                 subject_id=ticket.id, data={"ticket_id": ticket.id, "by": actor})


def close(session: Session, ticket: Ticket, actor: str) -> None:
    """Closed without an answer (the user withdrew, or staff closed a duplicate)."""
    if ticket.status not in OPEN_STATUSES:
        raise TicketError("not_open")
    ticket.status = "closed"
    ticket.closed_at = utcnow()
    audit.record(session, "ticket.closed", subject_type="ticket", subject_id=ticket.id, data={"by": actor})
    notify_staff(session, "ticket.closed", f"{number(ticket.id)} 取り下げ", "", subject_type="ticket",
                 subject_id=ticket.id, data={"ticket_id": ticket.id, "by": actor})


def rate(session: Session, ticket: Ticket, score: int) -> None:
    if not 1 <= score <= 5:
        raise TicketError("bad_score")
    ticket.satisfaction = score
    audit.record(session, "ticket.rated", actor_person_id=ticket.person_id, subject_type="ticket",
                 subject_id=ticket.id, data={"score": score})


def make_faq_candidate(session: Session, ticket: Ticket, staff: StaffAccount) -> FaqCandidate:
    """One click: the user's question and the last staff answer become a candidate for review."""
    answers = [m for m in ticket.messages if m.author == "staff"]
    if not answers:
        raise TicketError("no_answer")
    candidate = FaqCandidate(ticket_id=ticket.id, question=ticket.question, answer=answers[-1].text,
                             created_by=staff.id, status="pending", program=ticket.program)
    session.add(candidate)
    session.flush()
    audit.record(session, "faq.candidate_created", subject_type="faq_candidate", subject_id=candidate.id,
                 data={"ticket": ticket.id, "staff": staff.username})
    return candidate


def _tell_user(session: Session, ticket: Ticket, reply: Reply) -> None:
    conversation = session.get(Conversation, ticket.conversation_id) if ticket.conversation_id else None
    if conversation is not None and conversation.program:
        # Back through the program's own account (its LINE channel, its bot) the user wrote to.
        identity = session.execute(select(ChannelIdentity).where(
            ChannelIdentity.person_id == ticket.person_id,
            ChannelIdentity.channel == conversation.channel)).scalars().first()
        if identity is not None:
            queue(session, ticket.person_id, identity.channel, identity.external_user_id, [reply],
                  {"program": conversation.program})
            return
    try:
        send_to_person(session, ticket.person_id, [reply])
    except NoChannel:  # cannot happen for a person who wrote to us, but never lose the answer silently
        audit.record(session, "ticket.undeliverable", subject_type="ticket", subject_id=ticket.id)


def flag_overdue(session: Session, calendar: BusinessCalendar, sla_minutes: int,
                 now: datetime | None = None) -> list[Ticket]:
    """Open tickets nobody claimed within `sla_minutes` of business time: flag and re-post them once."""
    now = now or utcnow()
    flagged = []
    for ticket in session.execute(select(Ticket).where(Ticket.status == "open", Ticket.overdue.is_(False))).scalars():
        if calendar.business_minutes_between(ticket.created_at, now) >= sla_minutes:
            ticket.overdue = True
            flagged.append(ticket)
            audit.record(session, "ticket.overdue", subject_type="ticket", subject_id=ticket.id)
            notify_staff(session, "ticket.overdue", f"⚠ {number(ticket.id)} 未対応のまま{sla_minutes}分を過ぎました",
                         ticket.question, subject_type="ticket", subject_id=ticket.id,
                         data={"ticket_id": ticket.id})
    return flagged


# ------------------------------------------------------------------ metrics
@dataclass
class Dashboard:
    tickets_per_day: list[tuple[str, int]]
    median_first_response_min: float | None
    median_resolution_min: float | None
    questions: int
    deflection_rate: float | None
    satisfaction_avg: float | None
    top_unanswered: list[tuple[str, int]]
    open_count: int
    overdue_count: int


def dashboard(session: Session, days: int = 14, now: datetime | None = None, *, programs: Any = None,
              catalog: Any = None) -> Dashboard:
    """Figures of the last `days`; with `programs` (a staff member's, see bot.programs.staff_programs) only
    those programs' tickets and questions count."""

    now = now or utcnow()
    since = now - timedelta(days=days)
    ticket_scope = program_in(Ticket.program, programs, catalog) if catalog is not None else true()
    tickets = list(session.execute(select(Ticket).where(Ticket.created_at >= since, ticket_scope)).scalars())
    per_day = Counter(jst_date(ticket.created_at).isoformat() for ticket in tickets)
    first = [(tk.first_response_at - tk.created_at).total_seconds() / 60 for tk in tickets if tk.first_response_at]
    resolution = [(tk.resolved_at - tk.created_at).total_seconds() / 60 for tk in tickets if tk.resolved_at]
    question_query = select(func.count(func.distinct(Message.reply_to_id))).where(
        Message.handler == "question", Message.created_at >= since)
    if catalog is not None and programs is not None:
        question_query = question_query.join(Conversation, Conversation.id == Message.conversation_id).where(
            conversation_in(Conversation.program, programs, catalog))
    questions = session.execute(question_query).scalar_one()
    escalated_questions = sum(1 for tk in tickets if tk.reason in ("not_confident", "not_helpful"))
    deflection = (questions - escalated_questions) / questions if questions else None
    scores = [tk.satisfaction for tk in tickets if tk.satisfaction]
    unanswered = Counter(normalize(tk.question)[:80] for tk in tickets if tk.question)
    return Dashboard(
        tickets_per_day=sorted(per_day.items()),
        median_first_response_min=statistics.median(first) if first else None,
        median_resolution_min=statistics.median(resolution) if resolution else None,
        questions=questions,
        deflection_rate=deflection,
        satisfaction_avg=sum(scores) / len(scores) if scores else None,
        top_unanswered=unanswered.most_common(10),
        open_count=sum(1 for tk in tickets if tk.status in OPEN_STATUSES),
        overdue_count=sum(1 for tk in tickets if tk.overdue and tk.status == "open"),
    )


def overdue_check(services: Services) -> int:
    """The SLA rule as a periodic task: unclaimed tickets past the business-time limit are flagged."""
    settings = services.settings
    with services.db.session() as session:
        return len(flag_overdue(session, BusinessCalendar.from_settings(settings), settings.escalation.claim_sla_minutes))
