"""After a crash: inbound messages that were stored but never answered are answered, once.

The engine stores an inbound message in one transaction and its turn (state changes and replies) in a
second; a kill between the two left the message unanswered for good (a redelivery is a duplicate and
answers nothing). Since the turn is one transaction, nothing of it was kept, and answering the message
now is answering it once. On start, each such message younger than a day and older than a grace period
(another instance may be answering it right now) is processed again, when that is safe: it is still its
conversation's last inbound message (a later one was answered on a newer state), and it was not tried
before (a claim row, committed before trying, makes it once: a message that kills the process again is
not retried at every start). Otherwise, or when processing it fails, it gets an apology asking the user
to send it again, through the outbox, and a stored reply, so it is never apologised for twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from bot.i18n import add_strings, t
from bot.messages import Reply
from bot.outbox import queue
from bot.security.models import WebhookEvent
from bot.services import Services
from bot.storage.models import ChannelIdentity, Conversation, Message, Person, utcnow

log = logging.getLogger(__name__)

LOOKBACK = timedelta(days=1)
#: Channels whose users are reached through the outbox (the terminal chat is not).
OUTBOX_CHANNELS = ("web", "line", "telegram", "slack")
#: The claim of one re-answer is a row of the stored-events table under this channel name (unique per message).
CLAIM_CHANNEL = "recovery"

add_strings("ja", {"recovery_apology": "申し訳ありません。システムの再起動のため、直前のメッセージ（{text}）にお答えできませんでした。"
                                       "お手数ですが、もう一度お送りください。"})
add_strings("en", {"recovery_apology": "Sorry: the system restarted and your last message ({text}) was not answered. "
                                       "Please send it again."})


class Reanswers(Protocol):
    def reanswer(self, inbound_id: int) -> object | None: ...


def recover_unanswered(services: Services, engine: Reanswers | None, grace: timedelta) -> int:
    """Answer again (or else apologise for) every recent inbound message without a reply; returns how many."""
    done = 0
    for inbound_id in _unanswered(services, grace):
        if engine is not None and _claim(services, inbound_id):
            try:
                if engine.reanswer(inbound_id) is not None:
                    log.warning("answered a message left unanswered", extra={"message_id": inbound_id})
                    done += 1
                    continue
            except Exception:
                log.exception("answering a message left unanswered failed", extra={"message_id": inbound_id})
        done += _apologise(services, inbound_id)
    return done


def _unanswered(services: Services, grace: timedelta) -> list[int]:
    reply = aliased(Message)
    now = utcnow()
    with services.db.session() as session:
        return list(session.execute(
            select(Message.id).outerjoin(reply, reply.reply_to_id == Message.id)
            .where(Message.direction == "in", reply.id.is_(None), Message.channel.in_(OUTBOX_CHANNELS),
                   Message.created_at >= now - LOOKBACK, Message.created_at <= now - grace)
            .order_by(Message.id)).scalars())


def _claim(services: Services, inbound_id: int) -> bool:
    """True for the first (and only) attempt to answer this message again, on any instance."""
    try:
        with services.db.session() as session:
            session.add(WebhookEvent(channel=CLAIM_CHANNEL, event_key=f"message:{inbound_id}", body={},
                                     processed_at=utcnow()))
            session.flush()
    except IntegrityError:
        return False
    return True


def _apologise(services: Services, inbound_id: int) -> int:
    reply = aliased(Message)
    with services.db.session() as session:
        row = session.execute(
            select(Message, Conversation, Person).join(Conversation, Conversation.id == Message.conversation_id)
            .join(Person, Person.id == Conversation.person_id)
            .outerjoin(reply, reply.reply_to_id == Message.id)
            .where(Message.id == inbound_id, reply.id.is_(None))).first()
        if row is None:
            return 0  # answered meanwhile
        inbound, conversation, person = row
        identity = session.execute(select(ChannelIdentity).where(
            ChannelIdentity.person_id == person.id, ChannelIdentity.channel == inbound.channel)
            .order_by(ChannelIdentity.id.desc()).limit(1)).scalar_one_or_none()
        if identity is None:
            return 0
        shown = (inbound.text or (inbound.payload or {}).get("choice") or "")[:40]
        apology = Reply(text=t("recovery_apology", person.locale or services.settings.locale, text=shown))
        context = dict((inbound.payload or {}).get("context") or {})
        if conversation.program:
            context["program"] = conversation.program
        queue(session, person.id, inbound.channel, identity.external_user_id, [apology], context or None)
        session.add(Message(conversation_id=conversation.id, direction="out", channel=inbound.channel,
                            reply_to_id=inbound.id, text=apology.text,
                            payload={"reply": apology.model_dump(mode="json")}, handler="recovery"))
    log.warning("apologised for an unanswered message", extra={"message_id": inbound_id})
    return 1
