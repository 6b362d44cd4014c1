"""After a crash: inbound messages that were stored but never answered get a short apology.

The engine stores an inbound message in one transaction and the turn (state and replies) in a second;
a kill between the two left the message unanswered for good (a redelivery is a duplicate and answers
nothing). On start, each such message younger than a day and older than a grace period (another
instance may be answering it right now) gets an apology asking the user to send it again, through the
outbox, and a stored reply so it is never apologised for twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import aliased

from bot.i18n import add_strings, t
from bot.messages import Reply
from bot.outbox import queue
from bot.services import Services
from bot.storage.models import ChannelIdentity, Conversation, Message, Person, utcnow

log = logging.getLogger(__name__)

LOOKBACK = timedelta(days=1)
#: Channels whose users are reached through the outbox (the terminal chat is not).
OUTBOX_CHANNELS = ("web", "line", "telegram", "slack")

add_strings("ja", {"recovery_apology": "申し訳ありません。システムの再起動のため、直前のメッセージ（{text}）にお答えできませんでした。"
                                       "お手数ですが、もう一度お送りください。"})
add_strings("en", {"recovery_apology": "Sorry: the system restarted and your last message ({text}) was not answered. "
                                       "Please send it again."})


def apologise_for_unanswered(services: Services, grace: timedelta) -> int:
    """Queue an apology for every recent inbound message without a reply; returns how many."""
    reply = aliased(Message)
    now = utcnow()
    done = 0
    with services.db.session() as session:
        rows = session.execute(
            select(Message, Conversation, Person).join(Conversation, Conversation.id == Message.conversation_id)
            .join(Person, Person.id == Conversation.person_id)
            .outerjoin(reply, reply.reply_to_id == Message.id)
            .where(Message.direction == "in", reply.id.is_(None), Message.channel.in_(OUTBOX_CHANNELS),
                   Message.created_at >= now - LOOKBACK, Message.created_at <= now - grace)
            .order_by(Message.id)).all()
        for inbound, conversation, person in rows:
            identity = session.execute(select(ChannelIdentity).where(
                ChannelIdentity.person_id == person.id, ChannelIdentity.channel == inbound.channel)
                .order_by(ChannelIdentity.id.desc()).limit(1)).scalar_one_or_none()
            if identity is None:
                continue
            shown = (inbound.text or (inbound.payload or {}).get("choice") or "")[:40]
            apology = Reply(text=t("recovery_apology", person.locale or services.settings.locale, text=shown))
            queue(session, person.id, inbound.channel, identity.external_user_id, [apology])
            session.add(Message(conversation_id=conversation.id, direction="out", channel=inbound.channel,
                                reply_to_id=inbound.id, text=apology.text,
                                payload={"reply": apology.model_dump(mode="json")}, handler="recovery"))
            done += 1
    if done:
        log.warning("apologised for unanswered messages", extra={"count": done})
    return done
