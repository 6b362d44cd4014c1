"""Messages to people who did not just write to us, kept until delivered.

The engine answers the sender in its reply; everything else (an SME asked to
confirm a visit, an expert told the SME confirmed, a staff answer relayed)
is written here in the same transaction as the change that caused it. Each
channel drains its rows: platform adapters push them and retry with backoff,
the web chat and the terminal pick them up when the user is there. A row is
marked sent only after the platform accepted it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.messages import Reply
from bot.storage.models import ChannelIdentity, Conversation, OutboundMessage, utcnow

RETRY_DELAYS_S = (10, 30, 120, 600, 1800, 3600)


class NoChannel(LookupError):
    """The person has no chat account to reach them on."""


def preferred_identity(session: Session, person_id: int, verified_only: bool = False) -> ChannelIdentity:
    """The account the person used most recently (verified ones first)."""
    query = (select(ChannelIdentity, Conversation.updated_at)
             .outerjoin(Conversation, (Conversation.person_id == ChannelIdentity.person_id)
                        & (Conversation.channel == ChannelIdentity.channel))
             .where(ChannelIdentity.person_id == person_id))
    if verified_only:
        query = query.where(ChannelIdentity.verified.is_(True))
    rows = list(session.execute(query).all())
    if not rows:
        raise NoChannel(person_id)
    rows.sort(key=lambda row: (row[0].verified, row[1] or row[0].created_at), reverse=True)
    return rows[0][0]


def program_on(session: Session, person_id: int, channel: str, program: str | None = None) -> str | None:
    """The program whose account carries a message to the person on `channel` (its LINE account, its bot):
    `program` (a visit's) when they have a conversation in it there, else the program of their latest
    conversation there; None when that is a general entry point (the general account)."""
    programs = list(session.execute(
        select(Conversation.program).where(Conversation.person_id == person_id, Conversation.channel == channel)
        .order_by(Conversation.updated_at.desc(), Conversation.id.desc())).scalars())
    if program and program in programs:
        return program
    return (programs[0] or None) if programs else None


def send_to_person(session: Session, person_id: int, replies: list[Reply], *,
                   verified_only: bool = False, program: str | None = None) -> OutboundMessage:
    """Queue `replies` (delivered together, in order) on the person's preferred account, through the account
    of their program there (`program_on`): a message tied to no conversation still comes from the account
    the person knows, not the default program's."""
    identity = preferred_identity(session, person_id, verified_only)
    through = program_on(session, person_id, identity.channel, program)
    return queue(session, person_id, identity.channel, identity.external_user_id, replies,
                 {"program": through} if through else None)


def queue(session: Session, person_id: int, channel: str, external_user_id: str, replies: list[Reply],
          context: dict[str, object] | None = None) -> OutboundMessage:
    """One outbox row: the replies of one turn go out together (LINE sends up to five per reply token)."""
    row = OutboundMessage(person_id=person_id, channel=channel, external_user_id=external_user_id,
                          payload={"replies": [r.model_dump(mode="json") for r in replies],
                                   "context": dict(context or {})})
    session.add(row)
    session.flush()
    return row


def due(session: Session, channel: str, limit: int = 50) -> list[OutboundMessage]:
    """Pending rows of a channel whose next attempt is due, oldest first, locked for this worker."""
    query = (select(OutboundMessage)
             .where(OutboundMessage.channel == channel, OutboundMessage.status == "pending",
                    OutboundMessage.next_attempt_at <= utcnow())
             .order_by(OutboundMessage.id).limit(limit).with_for_update(skip_locked=True))
    return list(session.execute(query).scalars())


LEASE_S = 120


def lease(session: Session, rows: list[OutboundMessage]) -> list[OutboundMessage]:
    """Claim rows for one delivery attempt: nobody else picks them for `LEASE_S` seconds."""
    until = utcnow() + timedelta(seconds=LEASE_S)
    for row in rows:
        row.next_attempt_at = until
    session.flush()
    return rows


def pending_for_user(session: Session, channel: str, external_user_id: str) -> list[OutboundMessage]:
    return list(session.execute(
        select(OutboundMessage).where(OutboundMessage.channel == channel,
                                      OutboundMessage.external_user_id == external_user_id,
                                      OutboundMessage.status == "pending")
        .order_by(OutboundMessage.id).with_for_update(skip_locked=True)).scalars())


def take_pending(session: Session, channel: str, external_user_id: str) -> list[Reply]:
    """For channels that deliver when the user is there (web, terminal): the waiting replies, marked sent."""
    rows = pending_for_user(session, channel, external_user_id)
    for row in rows:
        mark_sent(row)
    return [reply for row in rows for reply in replies_of(row)]


def replies_of(row: OutboundMessage) -> list[Reply]:
    return [Reply.model_validate(r) for r in row.payload.get("replies", [])]


def mark_sent(row: OutboundMessage) -> None:
    row.status = "sent"
    row.sent_at = utcnow()
    row.attempts += 1


def mark_failed_attempt(row: OutboundMessage, error: str, retry_after_s: float | None = None) -> None:
    """Schedule the next try (the platform's Retry-After wins). After the last delay the row keeps
    retrying at the longest interval: it is never dropped, and `attempts`/`last_error` show it failing."""
    row.attempts += 1
    row.last_error = error[:2000]
    delay = retry_after_s if retry_after_s is not None else RETRY_DELAYS_S[min(row.attempts, len(RETRY_DELAYS_S)) - 1]
    row.next_attempt_at = utcnow() + timedelta(seconds=delay)
