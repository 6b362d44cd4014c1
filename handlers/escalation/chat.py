"""Handing a question to a person: tickets from the user's side.

A ticket is opened when the user asks for a person (「担当者と話したい」, the
offered button), accepts the offer after an answer the bot was not sure of,
or says an answer did not help (👎 / 「解決しない」). The reply says what
happens next and when: inside call-center hours 「担当者におつなぎします」,
outside them the start of the next business day (holidays and the year-end
break included). While the ticket is open, the user's messages go to the
staff thread; staff answers come back on the user's own channel, then a
one-question satisfaction survey.

The flow is a step table (`bot/flow.py`): `describe` (what to tell staff, when
there is no recent question), `what_wrong` (after 👎: what was wrong, or the
button that skips it) and `relay` (the ticket is open: every message goes to
staff). A question is the answer at every step, so none of them is free text
for the FAQ; a message that is not an answer (a sticker) re-asks the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from handlers.escalation.business_hours import BusinessCalendar, describe_opening
from bot.flow import Step, StepFlow
from bot.handler import Turn, answer_meta, asked_question
from bot.programs import Program, catalog_for
from bot.i18n import add_locale_dir, t
from bot.messages import Option, Reply
from bot.storage.models import Person
from handlers.escalation.models import Ticket
from handlers.escalation import tickets

add_locale_dir(Path(__file__).resolve().parent / "locales")

ASK_WORDS = ("担当者に問い合わせる", "担当者と話したい", "人と話したい", "電話したい", "問い合わせ先", "オペレーター",
             "担当者", "有人対応", "人間と話したい")
NOT_HELPFUL_WORDS = ("解決しない", "解決しなかった", "わからない", "役に立たない", "👎")
HELPFUL_WORDS = ("解決した", "わかった", "ありがとう", "ありがとうございます", "👍")
SKIP_CHOICE = "contact:skip"


class EscalationHandler(StepFlow):
    name = "escalation"
    flow_label = "担当者へのお問い合わせ"
    triggers = (*ASK_WORDS, *NOT_HELPFUL_WORDS, *HELPFUL_WORDS)
    choice_prefix = None

    def claims(self, turn: Turn) -> bool:
        choice = turn.message.choice or ""
        if choice.startswith(("contact:", "feedback:", "ticket:done:", "ticket:rate:", "ticket:cancel:")):
            return True
        if turn.text in HELPFUL_WORDS or turn.text in NOT_HELPFUL_WORDS:
            # Feedback on an answer, not a command: inside a flow 「わからない」 answers the flow's question
            # (the hearing sheet's 法人番号 prompt invites it) and 「ありがとう」 is small talk.
            return turn.conversation.active_flow is None
        return turn.text in ASK_WORDS

    def menu_options(self, locale: str, person: Person | None = None, program: Program | None = None) -> list[Option]:
        return [Option(label=t("contact_menu", locale), value="contact:human")]

    # ------------------------------------------------------------ commands
    def on_command(self, turn: Turn) -> list[Reply]:
        choice = turn.message.choice or ""
        if choice.startswith("ticket:"):
            return self._ticket_action(turn, choice)
        if choice == "feedback:up" or (not choice and turn.text in HELPFUL_WORDS):
            turn.audit("answer.helpful", subject_type="conversation", subject_id=turn.conversation.id)
            self._mark_resolved(turn)
            return [Reply(text=turn.t("escalation_thanks_helpful"))]
        not_helpful = choice == "feedback:down" or (not choice and turn.text in NOT_HELPFUL_WORDS)
        existing = tickets.open_ticket_of(turn.session, turn.person.id)
        if existing is not None:
            turn.start_flow(self.name, {"step": "relay", "ticket_id": existing.id})
            return self._prompt_relay(turn)
        question, sources, confident, named = self._last_question(turn)
        if question is None:
            turn.start_flow(self.name, {"step": "describe"})
            return self._prompt_describe(turn)
        if not_helpful:  # one optional step: what was wrong, so staff need not guess
            turn.start_flow(self.name, {"step": "what_wrong", "question": question, "sources": sources,
                                        "program": named})
            return self._prompt_what_wrong(turn)
        reason = "asked_human" if confident is not False else "not_confident"
        return self._open(turn, question, sources, reason, named=named)

    # ---------------------------------------------------------------- flow
    def steps(self) -> Mapping[str, Step]:
        """Asking for a person, one row per step: every step re-prompts."""
        return {
            "describe": Step(self._prompt_describe, self._parse_describe, next=("relay",)),
            "what_wrong": Step(self._prompt_what_wrong, self._parse_what_wrong, next=("relay",),
                               expects=lambda turn: turn.message.choice == SKIP_CHOICE),
            "relay": Step(self._prompt_relay, self._parse_relay),
        }

    def step_name(self, turn: Turn) -> str | None:
        state = turn.flow_state
        return state.get("step") or ("relay" if state.get("ticket_id") else None)  # older rows: only ticket_id

    def _prompt_describe(self, turn: Turn) -> list[Reply]:
        return [Reply(text=turn.t("escalation_describe"), free_input=True)]

    def _parse_describe(self, turn: Turn) -> list[Reply] | None:
        if not turn.text:
            return None
        return self._open(turn, turn.message.text or "", [], "asked_human")

    def _prompt_what_wrong(self, turn: Turn) -> list[Reply]:
        return [Reply(text=turn.t("escalation_what_wrong"), free_input=True,
                      options=[Option(label=turn.t("escalation_skip_to_human"), value=SKIP_CHOICE)])]

    def _parse_what_wrong(self, turn: Turn) -> list[Reply] | None:
        state = turn.flow_state
        question, sources = state.get("question") or "", state.get("sources") or []
        named = state.get("program")
        if turn.message.choice == SKIP_CHOICE:
            return self._open(turn, question, sources, "not_helpful", named=named)
        if not turn.text:
            return None
        return self._open(turn, question, sources, "not_helpful", named=named,
                          note=turn.t("escalation_wrong_note", text=turn.message.text or ""))

    def _open_ticket(self, turn: Turn) -> Ticket | None:
        ticket = turn.session.get(Ticket, turn.flow_state.get("ticket_id") or 0)
        return ticket if ticket is not None and ticket.status in tickets.OPEN_STATUSES else None

    def _prompt_relay(self, turn: Turn) -> list[Reply]:
        ticket = self._open_ticket(turn)
        if ticket is None:
            return []
        return [Reply(text=turn.t("escalation_already", number=tickets.number(ticket.id)),
                      options=[self._cancel_option(turn, ticket)])]

    def _parse_relay(self, turn: Turn) -> list[Reply] | None:
        ticket = self._open_ticket(turn)
        if ticket is None:
            turn.end_flow("finished")
            return None  # the ticket is over: this is a new question for the bot
        if not turn.text and not turn.message.location:
            return None
        tickets.add_user_message(turn.session, ticket, turn.message.text or "（位置情報）", turn.message.channel)
        return [Reply(text=turn.t("escalation_relayed"), options=[self._cancel_option(turn, ticket)])]

    # -------------------------------------------------------------- helpers
    def _open(self, turn: Turn, question: str, sources: list[dict[str, Any]], reason: str,
              note: str | None = None, named: str | None = None) -> list[Reply]:
        """A ticket for the question. `named`: the program the question named at a general entry point (the
        FAQ answered it from that program's documents): its staff take it, in its hours."""
        program = turn.program  # a program's own window: its hours and its contact
        if program is None and named:
            program = catalog_for(turn.services).get(named)
        ticket = tickets.create(turn.session, turn.person, conversation_id=turn.conversation.id,
                                channel=turn.message.channel, reason=reason, question=question, sources=sources,
                                program=program.id if program is not None else turn.owner_program)
        if note:
            tickets.add_user_message(turn.session, ticket, note, turn.message.channel)
        turn.start_flow(self.name, {"step": "relay", "ticket_id": ticket.id})
        settings = turn.services.settings
        if program is not None:
            hours = program.hours
            calendar = BusinessCalendar.from_hours(hours.open, hours.close, hours.year_end_closed, hours.closed_days)
            contact, hours_text = program.contact, hours.text
        else:
            calendar = BusinessCalendar.from_settings(settings)
            contact, hours_text = settings.escalation.contact, settings.hours.text
        now = turn.message.timestamp
        if calendar.is_open(now):
            text = turn.t("escalation_open", number=tickets.number(ticket.id))
            if contact.strip():  # the phone has the same hours: offered only while open
                text += "\n" + turn.t("escalation_phone", contact=contact.strip(), hours=hours_text)
        else:
            text = turn.t("escalation_closed_hours", number=tickets.number(ticket.id), hours=hours_text,
                          opening=describe_opening(calendar.next_opening(now), turn.locale))
        return [Reply(text=text, options=[self._cancel_option(turn, ticket)], meta={"ticket": ticket.id})]

    def _mark_resolved(self, turn: Turn) -> None:
        """👍 closes the latest question: no later ticket may carry it as the user's open question."""
        answer = turn.latest_answer()
        if answer is not None:
            answer.payload = {**(answer.payload or {}), "resolved": True}

    def _last_question(self, turn: Turn) -> tuple[str | None, list[dict[str, Any]], bool | None, str | None]:
        """The user's latest unresolved question to the bot (last 30 minutes), the sources shown, whether
        the bot was confident, and the program it was asked of (one the question named at a general entry
        point). A question the user marked 👍 is resolved: none then."""
        answer = turn.latest_answer()
        if answer is None or answer.reply_to_id is None or (answer.payload or {}).get("resolved"):
            return None, [], None, None
        meta = answer_meta(answer)
        return (asked_question(turn.session, answer), list(meta.get("citations") or []), meta.get("confident"),
                meta.get("program"))

    def _ticket_action(self, turn: Turn, choice: str) -> list[Reply]:
        parts = choice.split(":")
        ticket = turn.session.get(Ticket, int(parts[2])) if len(parts) > 2 and parts[2].isdigit() else None
        if ticket is None or ticket.person_id != turn.person.id:
            return [Reply(text=turn.t("escalation_not_yours"))]
        action = parts[1]
        try:
            if action == "cancel":
                tickets.close(turn.session, ticket, actor="user")
                turn.end_flow("left")
                return [Reply(text=turn.t("escalation_cancelled", number=tickets.number(ticket.id)))]
            if action == "done":
                tickets.resolve(turn.session, ticket, actor="user")
                turn.end_flow("finished")
                return [Reply(text=turn.t("escalation_marked_resolved"))]
            if action == "rate" and len(parts) == 4 and parts[3].isdigit():
                tickets.rate(turn.session, ticket, int(parts[3]))
                return [Reply(text=turn.t("escalation_thanks_rating"))]
        except tickets.TicketError:
            pass
        return [Reply(text=turn.t("unknown_choice"))]

    def _cancel_option(self, turn: Turn, ticket: Ticket) -> Option:
        return Option(label=turn.t("escalation_cancel"), value=f"ticket:cancel:{ticket.id}")
