"""What a capability's chat side looks like to the engine.

A capability's `chat.py` defines a `Handler` subclass; its `Capability`
declaration (`bot/capability.py`) hands an instance to the engine through the
ordered list in `handlers/capabilities.py`. After its middleware the engine
offers the message to the conversation's active flow first; the flow answers
it, says it is a question (None: the question handlers answer and the flow asks
its question again), or declines it (`NOT_MINE`: a link code, a menu or leave
word, another capability's button), and then the normal routing applies: a
leave word, a handler's button or explicit command, else the question handlers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.i18n import t
from bot.messages import InboundMessage, Option, Reply
from bot.programs import Program, catalog_for
from bot.storage import audit
from bot.storage.models import ChannelIdentity, Conversation, Message, Person, utcnow

if TYPE_CHECKING:
    from bot.services import Services


class _NotMine(Enum):
    NOT_MINE = "not mine"


#: What a flow returns for a message it does not own: the engine then routes it as if no flow were active.
NOT_MINE: Literal[_NotMine.NOT_MINE] = _NotMine.NOT_MINE
#: A flow's reading of a message: its replies; None = a question (answered, then the flow asks again); NOT_MINE.
FlowResult: TypeAlias = list[Reply] | None | Literal[_NotMine.NOT_MINE]
#: In `Turn.claimed_by`: the message is a leave word (「やめる」「中断」 or the leave button).
LEAVE = "leave"
#: `Message.handler` of the bot's answers to questions (what the staff inbox counts as answers).
QUESTION = "question"
#: How long the bot's latest answer stays the question under discussion: a person asked for, or a program's
#: button pressed, within it carries that question.
RECENT_ANSWER = timedelta(minutes=30)


def answer_meta(answer: Message) -> dict[str, Any]:
    """What a stored reply of the bot said of itself (`Reply.meta`: its outcome, citations, program, ...)."""
    return ((answer.payload or {}).get("reply") or {}).get("meta") or {}


def asked_question(session: Session, answer: Message) -> str | None:
    """The question a stored answer answers: the one its meta names (an answer to a program's button, whose
    message is the button press), else the text of the message it replies to."""
    named = answer_meta(answer).get("question")
    if named:
        return str(named)
    asked = session.get(Message, answer.reply_to_id) if answer.reply_to_id is not None else None
    return asked.text if asked is not None and asked.text else None


@dataclass
class Turn:
    """Everything a handler needs for one inbound message, inside one DB transaction."""

    session: Session
    person: Person
    conversation: Conversation
    message: InboundMessage
    text: str  # normalized
    services: Services
    locale: str = "ja"
    #: Who takes this message if the active flow declines it: the names of the handlers that claim it as a
    #: button or command, and `LEAVE` for a leave word. Set by the engine before it offers the message to the flow.
    claimed_by: tuple[str, ...] = ()

    def t(self, key: str, **values: object) -> str:
        return t(key, self.locale, **values)

    def audit(self, action: str, **kwargs: Any) -> None:
        audit.record(self.session, action, actor_person_id=self.person.id, **kwargs)

    def start_flow(self, name: str, state: dict[str, Any] | None = None) -> None:
        self.conversation.active_flow = name
        self.conversation.flow_state = dict(state or {})
        self.audit("flow.started", subject_type="conversation", subject_id=self.conversation.id,
                   data={"flow": name})

    def set_flow_state(self, state: dict[str, Any]) -> None:
        # Reassign (not mutate) so SQLAlchemy sees the JSON change.
        self.conversation.flow_state = dict(state)

    def end_flow(self, outcome: str = "finished") -> None:
        flow = self.conversation.active_flow
        if flow is None:
            return
        self.conversation.active_flow = None
        self.conversation.flow_state = {}
        self.audit(f"flow.{outcome}", subject_type="conversation", subject_id=self.conversation.id,
                   data={"flow": flow})

    @property
    def program_id(self) -> str | None:
        """The program of the conversation's entry point; None at a general one (`/`, the legacy webhooks)."""
        return self.conversation.program or None

    @property
    def program(self) -> Program | None:
        return catalog_for(self.services).get(self.program_id)

    @property
    def owner_program(self) -> str:
        """The program that owns what this turn creates (a ticket, a hearing response): the entry point's,
        else the default program."""
        return catalog_for(self.services).owner_id(self.program_id)

    @property
    def flow_state(self) -> dict[str, Any]:
        return dict(self.conversation.flow_state or {})

    def latest_answer(self) -> Message | None:
        """The bot's latest answer to a question in this conversation, within RECENT_ANSWER; None if none."""
        return self.session.execute(
            select(Message).where(Message.conversation_id == self.conversation.id, Message.direction == "out",
                                  Message.handler == QUESTION, Message.created_at >= utcnow() - RECENT_ANSWER)
            .order_by(Message.id.desc()).limit(1)).scalar_one_or_none()

    def identity(self) -> ChannelIdentity:
        """The chat account this message came from (its `verified` flag says it was linked by a code)."""
        return self.session.execute(select(ChannelIdentity).where(
            ChannelIdentity.channel == self.message.channel,
            ChannelIdentity.external_user_id == self.message.external_user_id)).scalar_one()


class Handler:
    """Base class of every capability. Override only what the capability does."""

    name: ClassVar[str] = ""
    #: Human name of the flow, for 「〜を中断しました」.
    flow_label: ClassVar[str] = ""
    #: Normalized texts (exact) or compiled patterns that start this handler.
    triggers: ClassVar[tuple[str | re.Pattern[str], ...]] = ()
    #: Button values with this prefix belong to this handler ("hearing:" ...).
    choice_prefix: ClassVar[str | None] = None
    #: Roles allowed to use the handler's commands; None = everyone.
    roles: ClassVar[frozenset[str] | None] = None
    #: Question handlers answer free text when no command or flow claims it; lower runs first.
    question_priority: ClassVar[int | None] = None

    def claims(self, turn: Turn) -> bool:
        """True when the message is an explicit command or button for this handler."""
        choice = turn.message.choice
        if choice and self.choice_prefix and choice.startswith(self.choice_prefix):
            return True
        return self.triggered_by(turn.text)

    def triggered_by(self, text: str) -> bool:
        """True when a (normalized) typed text is one of this handler's commands."""
        for trigger in self.triggers:
            if isinstance(trigger, re.Pattern):
                if trigger.fullmatch(text):
                    return True
            elif text == trigger:
                return True
        return False

    def allowed(self, person: Person) -> bool:
        return self.roles is None or person.role in self.roles

    def on_command(self, turn: Turn) -> list[Reply]:
        """Handle an explicit command or button value."""
        raise NotImplementedError

    def offer(self, turn: Turn) -> FlowResult:
        """The engine offers every message to the active flow first. The replies; None = not an answer but a
        question (answered, then `reprompt`); NOT_MINE = route it as if no flow were active. By default a flow
        declines what a handler claims as a button or command, or a leave word (`turn.claimed_by`), and reads
        everything else with `on_flow_message`; a `StepFlow` lets its current step take what it expects."""
        return NOT_MINE if turn.claimed_by else self.on_flow_message(turn)

    def on_flow_message(self, turn: Turn) -> list[Reply] | None:
        """Read a message of this handler's flow that no one else claims; None = not an answer (a question)."""
        return None

    def reprompt(self, turn: Turn) -> list[Reply]:
        """Ask the flow's current question again (after a question was answered mid-flow)."""
        return []

    def on_leave(self, turn: Turn) -> list[Reply]:
        """The user left the flow (「やめる」): save what must survive a later resume; say how to resume."""
        return []

    def answer(self, turn: Turn) -> list[Reply] | None:
        """As a question handler: answer free text, or None to let the next one try."""
        return None

    def menu_options(self, locale: str, person: Person | None = None, program: Program | None = None) -> list[Option]:
        """Buttons this capability adds to the main menu (`person` known: only what they may use; `program`:
        the program whose menu it is, the entry point's or the default one)."""
        return []


def main_menu(services: Services, locale: str, person: Person | None = None,
              program_id: str | None = None) -> list[Option]:
    """The main menu: the buttons every installed capability contributes (for this person, if known), in the
    program of the entry point (`program_id`; the default program's at a general one)."""
    catalog = catalog_for(services)
    program = catalog.get(program_id) or catalog.default
    options: list[Option] = []
    for capability in services.capabilities:
        handler = capability.handler
        if handler is not None and (person is None or handler.allowed(person)):
            options.extend(handler.menu_options(locale, person, program))
    return options
