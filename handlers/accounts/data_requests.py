"""A person's data requests: everything we hold about them (export), and erasure (forget).

Erasure removes what identifies the person and what they wrote: name,
chat accounts, message texts, hearing answers, ticket texts, queued
messages. Records the programs must keep for payment and reporting (visits
with their times and fees) stay, attached to the now nameless person. The
audit trail is never rewritten, so its hash chain stays valid; it records
the erasure itself, without personal data.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import delete, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from bot.jst import utc_iso
from bot.storage import audit
from bot.storage.models import AuditEvent, ChannelIdentity, Conversation, Message, OutboundMessage, Person
from handlers.escalation.models import Ticket, TicketMessage
from handlers.hearing.models import FormResponse
from handlers.visits.models import Visit

ERASED = "（削除済み）"


def export(session: Session, person_id: int) -> dict[str, Any]:
    person = session.get(Person, person_id)
    if person is None:
        raise LookupError(person_id)
    conversations = list(session.execute(select(Conversation).where(Conversation.person_id == person_id)).scalars())
    conversation_ids = [c.id for c in conversations]
    messages = list(session.execute(select(Message).where(Message.conversation_id.in_(conversation_ids))
                                    .order_by(Message.id)).scalars()) if conversation_ids else []
    tickets = list(session.execute(select(Ticket).where(Ticket.person_id == person_id)).scalars())
    return {
        "person": {"id": person.id, "role": person.role, "display_name": person.display_name,
                   "organisation": person.organisation, "company_id": person.company_id,
                   "locale": person.locale, "created_at": utc_iso(person.created_at)},
        "accounts": [{"channel": i.channel, "external_user_id": i.external_user_id, "verified": i.verified,
                      "created_at": utc_iso(i.created_at)} for i in person.identities],
        "messages": [{"channel": m.channel, "direction": m.direction, "text": m.text, "payload": m.payload,
                      "at": utc_iso(m.created_at)} for m in messages],
        "hearing_responses": [{"id": r.id, "form": r.form_id, "version": r.form_version, "status": r.status,
                               "answers": r.answers, "submitted_at": utc_iso(r.submitted_at)}
                              for r in session.execute(select(FormResponse).where(
                                  FormResponse.person_id == person_id)).scalars()],
        "tickets": [{"id": t.id, "status": t.status, "question": t.question, "created_at": utc_iso(t.created_at),
                     "messages": [{"author": m.author, "text": m.text, "at": utc_iso(m.created_at)} for m in t.messages]}
                    for t in tickets],
        "visits_as_expert": [{"id": v.id, "date": v.planned_date.isoformat(), "company_id": v.company_id,
                              "status": v.status, "checkin_at": utc_iso(v.checkin_at), "checkout_at": utc_iso(v.checkout_at),
                              "checkin_location": [v.checkin_lat, v.checkin_lon],
                              "face_to_face_minutes": v.face_to_face_minutes}
                             for v in session.execute(select(Visit).where(Visit.expert_person_id == person_id)).scalars()],
        "audit_events": [{"id": e.id, "action": e.action, "at": utc_iso(e.created_at)}
                         for e in session.execute(select(AuditEvent).where(AuditEvent.actor_person_id == person_id)
                                                  .order_by(AuditEvent.id)).scalars()],
    }


def forget(session: Session, person_id: int, actor: str) -> dict[str, int]:
    person = session.get(Person, person_id)
    if person is None:
        raise LookupError(person_id)
    conversation_ids = list(session.execute(select(Conversation.id).where(
        Conversation.person_id == person_id)).scalars())
    def changed(statement: Any) -> int:
        """Rows an UPDATE or DELETE touched."""
        return int(cast(CursorResult[Any], session.execute(statement)).rowcount)

    counts = {
        "accounts": changed(delete(ChannelIdentity).where(ChannelIdentity.person_id == person_id)),
        "messages": changed(update(Message).where(Message.conversation_id.in_(conversation_ids))
                            .values(text=None, payload={"erased": True})) if conversation_ids else 0,
        "hearing_responses": changed(update(FormResponse).where(FormResponse.person_id == person_id)
                                     .values(answers={}, state={}, status="erased")),
        "queued_messages": changed(delete(OutboundMessage).where(OutboundMessage.person_id == person_id)),
    }
    ticket_ids = list(session.execute(select(Ticket.id).where(Ticket.person_id == person_id)).scalars())
    if ticket_ids:
        session.execute(update(Ticket).where(Ticket.id.in_(ticket_ids)).values(question=ERASED, transcript=[]))
        session.execute(update(TicketMessage).where(TicketMessage.ticket_id.in_(ticket_ids)).values(text=ERASED))
    counts["tickets"] = len(ticket_ids)
    session.execute(update(Conversation).where(Conversation.id.in_(conversation_ids))
                    .values(active_flow=None, flow_state={}))
    person.display_name = ERASED
    person.organisation = None
    audit.record(session, "person.forgotten", subject_type="person", subject_id=person_id,
                 data={"by": actor, **{k: int(v or 0) for k, v in counts.items()}})
    return {k: int(v or 0) for k, v in counts.items()}
