"""The conversation engine: the only place that decides which handler gets a message.

For each `InboundMessage` it loads or creates the person and conversation,
then runs an explicit, ordered list of middleware: at intake (before the
message is stored) de-duplication of a redelivered platform message, refusal
of empty or over-long input, the rate limit; inside the turn (one transaction
holding the conversation's row lock) expiry of a stale flow. Then it routes, in
the order of `Engine.routing`: the active flow gets the message first (so a
button-like or command-like word its current step expects, a numbered choice,
an everyday word like 「わからない」, is an answer inside a form); a flow
declines (`NOT_MINE`) what it does not own, a link code, a menu or leave word,
another capability's button, and then: leave words, the role check, the
handler that claims the button or explicit command, else the question handlers
(inside a flow, a question is answered and the flow asks its question again).
Every reply is stored, tagged with the handler that wrote it, in the same
transaction, and only then returned.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.handler import LEAVE, NOT_MINE, QUESTION, Handler, Turn, main_menu
from bot.i18n import t
from bot.messages import InboundMessage, Option, Reply
from bot.services import Services
from bot.outbox import queue
from bot.storage import audit
from bot.storage.models import ChannelIdentity, Conversation, Message, Person, utcnow
from bot.text import has_meaningful_text, normalize, too_long

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


#: Replies, each with the name of the handler that wrote it (stored with it: 👎 finds the question by it).
Tagged = list[tuple[Reply, str]]


@dataclass
class Intake:
    """One message at intake, before it is stored (first transaction)."""

    session: Session
    message: InboundMessage
    conversation: Conversation
    text: str
    locale: str


@dataclass
class Route:
    """One message inside its turn; middleware may put replies in front of whatever answers it."""

    turn: Turn
    inbound_id: int
    lead: Tagged = field(default_factory=list)


IntakeStep = Callable[[Intake], "Outcome | None"]
RouteStep = Callable[[Route], "Tagged | None"]


class Engine:
    """Channel-agnostic message processing over the shared services and the installed capabilities."""

    def __init__(self, services: Services) -> None:
        self.services = services
        services.check()
        self.handlers: dict[str, Handler] = {
            c.handler.name: c.handler for c in services.capabilities if c.handler is not None}
        self._channel_window = SlidingWindow(seconds=1.0)
        self.question_handlers = sorted(
            (h for h in self.handlers.values() if h.question_priority is not None),
            key=lambda h: h.question_priority or 0,
        )
        # The middleware and the routing, in the order they run. A step returns a result to stop there, None to
        # go on.
        self.intake: tuple[IntakeStep, ...] = (self.deduplicate, self.refuse_bad_input, self.rate_limit)
        self.middleware: tuple[RouteStep, ...] = (self.expire_stale_flow,)
        self.routing: tuple[RouteStep, ...] = (self.active_flow, self.leave_words, self.role_check, self.commands,
                                               self.free_text)

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
        with self.services.db.session() as session:
            person, conversation = self._load_party(session, message)
            locale = person.locale or settings.locale
            intake = Intake(session, message, conversation, text, locale)
            for step in self.intake:
                stopped = step(intake)
                if stopped is not None:
                    if outbox and not stopped.duplicate:
                        self._queue(session, conversation, message, stopped.replies)
                    return stopped
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
            answered = self._answer(conversation_id, inbound_id, message, locale, outbox=outbox)
            assert answered is not None
            return answered
        except Exception:
            log.exception("handler failed", extra={"conversation_id": conversation_id})
            replies = [Reply(text=t("internal_error", locale))]
            with self.services.db.session() as session:
                stored = session.get(Conversation, conversation_id)
                assert stored is not None
                self._store_replies(session, stored, inbound_id, [(r, "error") for r in replies])
                if outbox:
                    self._queue(session, stored, message, replies)
            return Outcome(replies)

    def _answer(self, conversation_id: int, inbound_id: int, message: InboundMessage, locale: str, *,
                outbox: bool, only_if_unanswered: bool = False) -> Outcome | None:
        """The turn: one transaction holding the conversation's row lock, whose state changes and replies are
        committed together (so a kill before its commit leaves nothing of it)."""
        with self.services.db.session() as session:
            locked = self._lock_conversation(session, conversation_id)
            if only_if_unanswered and not self._unanswered_and_last(session, locked, inbound_id):
                return None
            owner = session.get(Person, locked.person_id)
            assert owner is not None
            turn = Turn(session, owner, locked, message, normalize(message.text), self.services, locale)
            tagged = self._route(Route(turn, inbound_id))
            replies = [reply for reply, _ in tagged]
            self._store_replies(session, locked, inbound_id, tagged)
            if outbox:
                self._queue(session, locked, message, replies)
            return Outcome(replies)

    def reanswer(self, inbound_id: int) -> Outcome | None:
        """Answer a stored inbound message that was left without a reply (a kill between storing it and
        committing its turn: nothing of the turn was kept, so answering it now is answering it once).

        Only when it is still unanswered and still its conversation's last inbound message, both checked under
        the conversation's lock (a later message was answered on a newer state: answering this one now would be
        out of order): else None. The replies go to the outbox, to where the platform wanted them
        (the stored reply context). Errors propagate: the caller apologises instead."""
        with self.services.db.session() as session:
            inbound = session.get(Message, inbound_id)
            if inbound is None or inbound.direction != "in":
                return None
            conversation = session.get(Conversation, inbound.conversation_id)
            assert conversation is not None
            person = session.get(Person, conversation.person_id)
            identity = session.execute(select(ChannelIdentity).where(
                ChannelIdentity.person_id == conversation.person_id, ChannelIdentity.channel == inbound.channel)
                .order_by(ChannelIdentity.id.desc()).limit(1)).scalar_one_or_none()
            if person is None or identity is None:
                return None
            payload = dict(inbound.payload or {})
            message = InboundMessage(
                channel=inbound.channel, external_user_id=identity.external_user_id, text=inbound.text,
                choice=payload.get("choice"), location=payload.get("location"),
                attachments=payload.get("attachments") or [], platform_message_id=inbound.platform_message_id,
                timestamp=inbound.created_at, program=conversation.program or None,
                reply_context=payload.get("context") or {}, client=payload.get("client") or {})
            locale = person.locale or self.services.settings.locale
            conversation_id = conversation.id
        return self._answer(conversation_id, inbound_id, message, locale, outbox=True, only_if_unanswered=True)

    @staticmethod
    def _unanswered_and_last(session: Session, conversation: Conversation, inbound_id: int) -> bool:
        replied = session.execute(select(Message.id).where(Message.reply_to_id == inbound_id).limit(1)).first()
        later = session.execute(select(Message.id).where(
            Message.conversation_id == conversation.id, Message.direction == "in", Message.id > inbound_id)
            .limit(1)).first()
        return replied is None and later is None

    # ------------------------------------------------------------- middleware
    def deduplicate(self, intake: Intake) -> Outcome | None:
        """A platform message id seen before gets the replies stored for it, and is not handled again."""
        if not intake.message.platform_message_id:
            return None
        earlier = self._stored_replies(intake.session, intake.message)
        return None if earlier is None else Outcome(earlier, duplicate=True)

    def refuse_bad_input(self, intake: Intake) -> Outcome | None:
        """Empty or over-long input is refused politely (the one length rule: `bot.text.too_long`)."""
        message, limit = intake.message, self.services.settings.chat.max_message_chars
        if too_long(message.text, limit):
            return Outcome([Reply(text=t("too_long", intake.locale, limit=limit))])
        if not intake.text and not message.choice and not message.location and not message.attachments:
            return Outcome([Reply(text=t("empty_message", intake.locale))])
        return None

    def rate_limit(self, intake: Intake) -> Outcome | None:
        """Per-user rate counted in the database (every worker agrees; one index range scan), and the
        per-channel rate in this process (a flood protection, it need not be exact across workers)."""
        settings = self.services.settings
        limited = not self._channel_window.allow(intake.message.channel, settings.limits.messages_per_channel_per_second)
        if not limited:
            per_user = intake.session.execute(select(func.count()).select_from(Message).where(
                Message.conversation_id == intake.conversation.id, Message.direction == "in",
                Message.created_at >= utcnow() - timedelta(seconds=60))).scalar_one()
            limited = per_user >= settings.limits.messages_per_user_per_minute
        return Outcome([Reply(text=t("rate_limited", intake.locale))], limited=True) if limited else None

    @staticmethod
    def is_leave_word(turn: Turn) -> bool:
        return turn.message.choice == LEAVE_CHOICE or turn.text.lower() in LEAVE_WORDS

    def expire_stale_flow(self, route: Route) -> Tagged | None:
        """A flow left alone longer than `chat.flow_timeout_minutes` ends (saving what it keeps), and says so;
        the message itself is then handled as if no flow were active."""
        turn = route.turn
        flow = self._flow(turn)
        if flow is None:
            return None
        previous = turn.session.execute(
            select(Message.created_at).where(Message.conversation_id == turn.conversation.id,
                                             Message.direction == "in", Message.id < route.inbound_id)
            .order_by(Message.id.desc()).limit(1)).scalar_one_or_none()
        limit = timedelta(minutes=self.services.settings.chat.flow_timeout_minutes)
        if previous is None or utcnow() - previous <= limit:
            return None
        saved = flow.on_leave(turn)
        turn.end_flow("expired")
        notice = Reply(text=turn.t("flow_expired", flow=flow.flow_label or flow.name))
        route.lead.extend((reply, flow.name) for reply in [*saved, notice])
        return None


    @staticmethod
    def _queue(session: Session, conversation: Conversation, message: InboundMessage, replies: list[Reply]) -> None:
        if replies:
            # The program goes with the row: its channel's own credentials send it (its LINE account, its bot).
            context = dict(message.reply_context) | ({"program": message.program} if message.program else {})
            queue(session, conversation.person_id, message.channel, message.external_user_id, replies, context)

    # ---------------------------------------------------------------- routing
    def _flow(self, turn: Turn) -> Handler | None:
        flow = self.handlers.get(turn.conversation.active_flow or "")
        return flow if flow is not None and flow.allowed(turn.person) else None

    def _route(self, route: Route) -> Tagged:
        for step in (*self.middleware, *self.routing):
            stopped = step(route)
            if stopped is not None:
                return route.lead + stopped
        raise AssertionError("the last routing step answers every message")

    @staticmethod
    def _by(name: str, replies: list[Reply]) -> Tagged:
        return [(reply, name) for reply in replies]

    def active_flow(self, route: Route) -> Tagged | None:
        """The active flow gets the message first. It answers it; or says it is a question (None): the question
        handlers answer, then the flow asks its question again; or declines it (NOT_MINE): routing goes on as if
        no flow were active. To decide, it sees who else would take the message (`Turn.claimed_by`)."""
        turn = route.turn
        flow = self._flow(turn)
        if flow is None:
            return None
        turn.claimed_by = (*(h.name for h in self.handlers.values() if h.claims(turn)),
                           *((LEAVE,) if self.is_leave_word(turn) else ()))
        replies = flow.offer(turn)
        if replies is NOT_MINE or (replies is None and turn.claimed_by):
            return None
        if replies is not None:
            return self._by(flow.name, replies)
        if self._flow(turn) is None:  # the flow ended itself (its ticket was closed): a new message for the bot
            return None
        answer = self._by(QUESTION, self._answer_question(turn)) if turn.text else []
        return answer + self._by(flow.name, flow.reprompt(turn))

    def leave_words(self, route: Route) -> Tagged | None:
        """「やめる」「中断」 (or the leave button) leave the active flow, unless its step took them as its answer."""
        turn = route.turn
        if self.is_leave_word(turn):
            return self._by("engine", self._leave_flow(turn, self._flow(turn)))
        return None

    def role_check(self, route: Route) -> Tagged | None:
        """A button or command of a handler the person's role may not use is refused. (Flows and question
        handlers of such a handler are skipped by routing, and its menu buttons are not shown.)"""
        turn = route.turn
        for handler in self.handlers.values():
            if handler.claims(turn) and not handler.allowed(turn.person):
                return [(Reply(text=turn.t("not_allowed")), handler.name)]
        return None

    def commands(self, route: Route) -> Tagged | None:
        """A button, or a typed command (a word that is only ever a command): the first handler that claims it."""
        turn = route.turn
        for handler in self.handlers.values():
            if handler.allowed(turn.person) and handler.claims(turn):
                # A button's reply that answers a program question (it carries `meta["outcome"]`, as every such
                # reply does: the FAQ's program buttons) is stored as an answer to a question; its other replies
                # (an unknown or stale button) are the handler's own.
                return [(reply, QUESTION if reply.meta.get("outcome") else handler.name)
                        for reply in handler.on_command(turn)]
        return None

    def free_text(self, route: Route) -> Tagged:
        """Everything else: a question for the question handlers (or a polite word on what was not understood)."""
        turn = route.turn
        text, message = turn.text, turn.message
        if message.choice and not text and not message.location:
            return self._by("engine", [Reply(text=turn.t("unknown_choice"), options=self.menu(turn))])
        if COMMAND_PATTERN.match(text):
            command = text.split()[0]
            return self._by("engine", [Reply(text=turn.t("unknown_command", command=command),
                                             options=self.menu(turn))])
        if not has_meaningful_text(text):
            if message.location or message.attachments:
                return self._by("engine", [Reply(text=turn.t("menu_prompt"), options=self.menu(turn))])
            return self._by("engine", [Reply(text=turn.t("emoji_only"), options=self.menu(turn))])
        return self._by(QUESTION, self._answer_question(turn))

    def _answer_question(self, turn: Turn) -> list[Reply]:
        for handler in self.question_handlers:
            if not handler.allowed(turn.person):
                continue
            replies = handler.answer(turn)
            if replies is not None:
                return replies
        return [Reply(text=turn.t("fallback_answer"))]

    def _leave_flow(self, turn: Turn, flow: Handler | None) -> list[Reply]:
        if flow is None:
            return [Reply(text=turn.t("no_active_flow"), options=self.menu(turn))]
        extra = flow.on_leave(turn)
        turn.end_flow("left")
        left = Reply(text=turn.t("left_flow", flow=flow.flow_label or flow.name), options=self.menu(turn))
        return [*extra, left] if extra else [left]

    def menu(self, turn: Turn) -> list[Option]:
        return main_menu(self.services, turn.locale, turn.person, turn.program_id)

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
        # One conversation per entry point: the same LINE user on two programs' accounts, or a web user on
        # /p/a/ and /p/b/, holds two threads, each knowing its program.
        program = message.program or ""
        query = select(Conversation).where(Conversation.person_id == person.id, Conversation.channel == message.channel,
                                           Conversation.program == program)
        conversation = session.execute(query).scalar_one_or_none()
        if conversation is None:
            try:
                with session.begin_nested():
                    conversation = Conversation(person_id=person.id, channel=message.channel, program=program,
                                                flow_state={})
                    session.add(conversation)
                    session.flush()
            except IntegrityError:  # opened concurrently by another request: use theirs
                conversation = session.execute(query).scalar_one()
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
    def _store_replies(session: Session, conversation: Conversation, inbound_id: int, replies: Tagged) -> None:
        for reply, handler in replies:
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
    if message.reply_context:  # where the answer goes, kept so a message left unanswered by a crash is answered there
        payload["context"] = dict(message.reply_context)
    return payload
