"""The conversation engine: the only place that decides which handler gets a message.

For each `InboundMessage` it (1) refuses bad input politely, (2) loads or
creates the person and conversation, (3) stores the inbound message (a
redelivered platform message id returns the replies already given, so nothing
is handled twice), (4) routes: leave-flow words, then an explicit command or
button, then the active flow, then the question handlers, (5) stores the
replies in the same transaction and only then returns them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.handler import Handler, Turn, main_menu, registered
from bot.i18n import t
from bot.messages import InboundMessage, Option, Reply
from bot.services import Services
from bot.storage import audit
from bot.outbox import queue
from bot.storage.models import ChannelIdentity, Conversation, Message, Person, utcnow
from bot.text import has_meaningful_text, normalize

log = logging.getLogger(__name__)

LEAVE_WORDS = frozenset({"やめる", "やめます", "中断", "中止", "キャンセル", "終了", "stop", "cancel", "quit"})
LEAVE_CHOICE = "flow:leave"
COMMAND_PATTERN = re.compile(r"^/[A-Za-z_]+")


class SlidingWindow:
    """Events per key in the last `seconds`, thread-safe: a cheap in-process rate limiter."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, limit: int) -> bool:
        now = time.monotonic()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and now - events[0] > self.seconds:
                events.popleft()
            if len(events) >= limit:
                return False
            events.append(now)
            return True


@dataclass
class Outcome:
    """What became of one inbound message."""

    replies: list[Reply]
    duplicate: bool = False  # a redelivery: `replies` are the ones given the first time
    limited: bool = False  # refused by a rate limit (nothing stored)


class Engine:
    """Channel-agnostic message processing over the shared services."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.handlers: dict[str, Handler] = registered()
        for handler in self.handlers.values():
            handler.check(services)
        self._channel_window = SlidingWindow(seconds=1.0)
        self.question_handlers = sorted(
            (h for h in self.handlers.values() if h.question_priority is not None),
            key=lambda h: h.question_priority or 0,
        )

    # ------------------------------------------------------------------ entry
    def handle(self, message: InboundMessage) -> list[Reply]:
        """Process one message end to end; every state change is committed before returning."""
        return self.process(message).replies

    def process(self, message: InboundMessage, *, outbox: bool = False) -> Outcome:
        """`handle`, saying also whether the message was a redelivery or refused by a limit.

        With `outbox=True` (platform channels) the replies are also queued in the
        outbox in the same transaction that stores them, so the channel's delivery
        worker sends them, retrying until the platform accepts them; a
        redelivered message queues nothing, so the user never gets a reply twice.
        """
        settings = self.services.settings
        text = normalize(message.text)
        refusal = None
        if message.text and len(message.text) > settings.max_message_chars:
            refusal = ("too_long", {"limit": settings.max_message_chars})
        elif not text and not message.choice and not message.location and not message.attachments:
            refusal = ("empty_message", {})

        with self.services.db.session() as session:
            person, conversation = self._load_party(session, message)
            locale = person.locale or settings.locale
            if message.platform_message_id:
                earlier = self._stored_replies(session, message)
                if earlier is not None:
                    return Outcome(earlier, duplicate=True)
            limited = refusal is None and self._over_limit(session, message, conversation)
            if refusal is not None or limited:
                key, values = refusal or ("rate_limited", {})
                replies = [Reply(text=t(key, locale, **values))]
                if outbox:
                    self._queue(session, conversation, message, replies)
                return Outcome(replies, limited=limited)
            inbound = Message(
                conversation_id=conversation.id,
                direction="in",
                channel=message.channel,
                platform_message_id=message.platform_message_id,
                text=message.text,
                payload=_inbound_payload(message),
            )
            session.add(inbound)
            try:
                session.flush()
            except IntegrityError:
                # Another worker stored the same platform message first: answer as it did.
                session.rollback()
                return Outcome(self._stored_replies(session, message) or [], duplicate=True)
            inbound_id = inbound.id
            conversation_id = conversation.id

        try:
            with self.services.db.session() as session:
                conversation = self._lock_conversation(session, conversation_id)
                person = session.get(Person, conversation.person_id)
                assert person is not None
                turn = Turn(session, person, conversation, message, text, self.services, locale)
                replies, handler_name = self._route(turn)
                self._store_replies(session, conversation, inbound_id, replies, handler_name)
                if outbox:
                    self._queue(session, conversation, message, replies)
                return Outcome(replies)
        except Exception:
            log.exception("handler failed", extra={"conversation_id": conversation_id})
            replies = [Reply(text=t("internal_error", locale))]
            with self.services.db.session() as session:
                conversation = session.get(Conversation, conversation_id)
                assert conversation is not None
                self._store_replies(session, conversation, inbound_id, replies, "error")
                if outbox:
                    self._queue(session, conversation, message, replies)
            return Outcome(replies)

    def _over_limit(self, session: Session, message: InboundMessage, conversation: Conversation) -> bool:
        """Per-user rate counted in the database (every worker agrees; one index range scan), and the
        per-channel rate in this process (a flood protection, it need not be exact across workers)."""
        settings = self.services.settings
        if not self._channel_window.allow(message.channel, settings.rate_limit_per_channel_per_second):
            return True
        per_user = session.execute(select(func.count()).select_from(Message).where(
            Message.conversation_id == conversation.id, Message.direction == "in",
            Message.created_at >= utcnow() - timedelta(seconds=60))).scalar_one()
        return bool(per_user >= settings.rate_limit_per_user_per_minute)

    @staticmethod
    def _queue(session: Session, conversation: Conversation, message: InboundMessage, replies: list[Reply]) -> None:
        if replies:
            queue(session, conversation.person_id, message.channel, message.external_user_id, replies,
                  message.reply_context)

    # ---------------------------------------------------------------- routing
    def _route(self, turn: Turn) -> tuple[list[Reply], str]:
        text, choice = turn.text, turn.message.choice
        flow = self.handlers.get(turn.conversation.active_flow or "")

        if choice == LEAVE_CHOICE or text.lower() in LEAVE_WORDS:
            return self._leave_flow(turn, flow), "engine"

        for handler in self.handlers.values():
            if handler.claims(turn):
                if not handler.allowed(turn.person):
                    return [Reply(text=turn.t("not_allowed"))], handler.name
                return handler.on_command(turn), handler.name

        if choice and not text and not turn.message.location and flow is None:
            return [Reply(text=turn.t("unknown_choice"), options=self.menu(turn.locale, turn.person))], "engine"

        if flow is not None:
            replies = flow.on_flow_message(turn)
            if replies is not None:
                return replies, flow.name
            # Not an answer to the flow's question: answer it, then return to the flow.
            answer = self._answer_question(turn) if text else []
            return answer + flow.reprompt(turn), flow.name

        if COMMAND_PATTERN.match(text):
            command = text.split()[0]
            return [Reply(text=turn.t("unknown_command", command=command), options=self.menu(turn.locale, turn.person))], "engine"
        if not has_meaningful_text(text):
            if turn.message.location or turn.message.attachments:
                return [Reply(text=turn.t("menu_prompt"), options=self.menu(turn.locale, turn.person))], "engine"
            return [Reply(text=turn.t("emoji_only"), options=self.menu(turn.locale, turn.person))], "engine"
        return self._answer_question(turn), "question"

    def _answer_question(self, turn: Turn) -> list[Reply]:
        for handler in self.question_handlers:
            replies = handler.answer(turn)
            if replies is not None:
                return replies
        return [Reply(text=turn.t("fallback_answer"))]

    def _leave_flow(self, turn: Turn, flow: Handler | None) -> list[Reply]:
        if flow is None:
            return [Reply(text=turn.t("no_active_flow"), options=self.menu(turn.locale, turn.person))]
        extra = flow.on_leave(turn)
        turn.end_flow("left")
        left = Reply(text=turn.t("left_flow", flow=flow.flow_label or flow.name), options=self.menu(turn.locale, turn.person))
        return [*extra, left] if extra else [left]

    @staticmethod
    def menu(locale: str, person: Person | None = None) -> list[Option]:
        return main_menu(locale, person)

    # ---------------------------------------------------------------- storage
    def _load_party(self, session: Session, message: InboundMessage) -> tuple[Person, Conversation]:
        identity = session.execute(
            select(ChannelIdentity).where(
                ChannelIdentity.channel == message.channel,
                ChannelIdentity.external_user_id == message.external_user_id,
            )
        ).scalar_one_or_none()
        if identity is None:
            try:
                with session.begin_nested():
                    person = Person(display_name=message.display_name, locale=self.services.settings.locale)
                    session.add(person)
                    session.flush()
                    identity = ChannelIdentity(
                        person_id=person.id,
                        channel=message.channel,
                        external_user_id=message.external_user_id,
                        display_name=message.display_name,
                    )
                    session.add(identity)
                    session.flush()
            except IntegrityError:  # created concurrently by another request: use theirs
                identity = session.execute(
                    select(ChannelIdentity).where(
                        ChannelIdentity.channel == message.channel,
                        ChannelIdentity.external_user_id == message.external_user_id,
                    )
                ).scalar_one()
            else:
                audit.record(session, "person.created", actor_person_id=person.id, subject_type="person",
                             subject_id=person.id, data={"channel": message.channel})
        person = identity.person
        conversation = session.execute(
            select(Conversation).where(
                Conversation.person_id == person.id, Conversation.channel == message.channel
            )
        ).scalar_one_or_none()
        if conversation is None:
            conversation = Conversation(person_id=person.id, channel=message.channel, flow_state={})
            session.add(conversation)
            session.flush()
        return person, conversation

    @staticmethod
    def _lock_conversation(session: Session, conversation_id: int) -> Conversation:
        """Row lock on PostgreSQL so one conversation's messages are handled one at a time."""
        return session.execute(
            select(Conversation).where(Conversation.id == conversation_id).with_for_update()
        ).scalar_one()

    @staticmethod
    def _stored_replies(session: Session, message: InboundMessage) -> list[Reply] | None:
        inbound_id = session.execute(
            select(Message.id).where(
                Message.channel == message.channel,
                Message.direction == "in",
                Message.platform_message_id == message.platform_message_id,
            )
        ).scalar_one_or_none()
        if inbound_id is None:
            return None
        stored = session.execute(
            select(Message).where(Message.reply_to_id == inbound_id).order_by(Message.id)
        ).scalars()
        return [Reply.model_validate(m.payload["reply"]) for m in stored if "reply" in (m.payload or {})]

    @staticmethod
    def _store_replies(
        session: Session, conversation: Conversation, inbound_id: int, replies: list[Reply], handler: str
    ) -> None:
        for reply in replies:
            session.add(
                Message(
                    conversation_id=conversation.id,
                    direction="out",
                    channel=conversation.channel,
                    reply_to_id=inbound_id,
                    text=reply.text,
                    payload={"reply": reply.model_dump(mode="json")},
                    handler=handler,
                )
            )
        session.flush()


def _inbound_payload(message: InboundMessage) -> dict[str, object]:
    payload: dict[str, object] = {}
    if message.choice:
        payload["choice"] = message.choice
    if message.location:
        payload["location"] = message.location.model_dump()
    if message.attachments:
        payload["attachments"] = [a.model_dump() for a in message.attachments]
    if message.client:
        payload["client"] = dict(message.client)
    return payload
