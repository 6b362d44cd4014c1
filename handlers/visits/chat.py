"""Experts log visits by message; the SME confirms on its own channel.

Expert: 「チェックイン」 (or /checkin, or the menu button) lists today's visits;
picking one records the check-in time at once (the message's timestamp), then
asks for the location (a LINE/Telegram location message, the web chat's
📍 button) or, failing that, the reason. 「チェックアウト」 likewise, then the
face-to-face minutes and whether the applying institution accompanied.
At check-out the company's linked contacts get a confirmation request on
their own channel (the outbox); a company without a linked contact gets a
one-time code the expert shows on the spot. Each step is committed before the
reply is sent; a redelivered message returns the stored reply (engine), and
a second check-in of the same visit is refused by the state machine.
"""

from __future__ import annotations

from pathlib import Path
import re
from collections.abc import Callable
from typing import Any

from handlers.hearing.answers import NO_WORDS, YES_WORDS
from bot.flow import Step, StepFlow
from bot.handler import Turn
from bot.programs import Program
from bot.i18n import add_locale_dir, t
from bot.messages import Link, Option, Reply
from bot.notify import notify_staff
from bot.text import looks_like_question
from bot.outbox import NoChannel, send_to_person
from handlers.accounts import link_codes
from bot.storage.models import Company, Person, Role
from handlers.accounts.models import LinkCode
from handlers.visits.models import Visit
from handlers.visits import service
from handlers.visits.durations import parse_duration_minutes
from bot.jst import jst_date, jst_time
from handlers.visits.rules import ProgramRules, billable_minutes, rules_for

add_locale_dir(Path(__file__).resolve().parent / "locales")

CHECKIN_WORDS = ("チェックイン", "ちぇっくいん", "訪問開始", "到着", "checkin", "check in", "check-in")
CHECKOUT_WORDS = ("チェックアウト", "ちぇっくあうと", "訪問終了", "支援終了", "checkout", "check out", "check-out")
NO_LOCATION_WORDS = frozenset({"位置情報を送れない", "位置情報なし", "送れない", "なし"})


def format_minutes(minutes: int, locale: str) -> str:
    hours, rest = divmod(minutes, 60)
    if locale != "ja":
        return f"{hours}h{rest:02d}m" if hours else f"{rest} min"
    return (f"{hours}時間" if hours else "") + (f"{rest}分" if rest or not hours else "")


class VisitsHandler(StepFlow):
    name = "visits"
    flow_label = "訪問の記録"
    triggers = (*CHECKIN_WORDS, *CHECKOUT_WORDS, re.compile(r"/(checkin|checkout|visits)"), "訪問予定", "今日の訪問")
    choice_prefix = "visits:"

    def menu_options(self, locale: str, person: Person | None = None, program: Program | None = None) -> list[Option]:
        if person is None or person.role != Role.EXPERT.value:
            return []
        return [Option(label=t("visits_menu_checkin", locale), value="visits:checkin"),
                Option(label=t("visits_menu_checkout", locale), value="visits:checkout")]

    # ------------------------------------------------------------ commands
    def on_command(self, turn: Turn) -> list[Reply]:
        choice = turn.message.choice or ""
        action, _, arg = choice.removeprefix(self.choice_prefix).partition(":")
        if action in ("confirm", "dispute"):
            return self._sme_answer(turn, action, int(arg) if arg.isdigit() else 0)
        if not self._is_linked_expert(turn):
            return [Reply(text=turn.t("visits_experts_only"))]
        text = turn.text.lower()
        if action == "checkin" or (not choice and (text in CHECKIN_WORDS or text in ("/checkin", "/visits",
                                                                                        "訪問予定", "今日の訪問"))):
            return self._list_for_checkin(turn, days=0)
        if action == "checkin_week":
            return self._list_for_checkin(turn, days=7)
        if action == "checkout" or (not choice and (text in CHECKOUT_WORDS or text == "/checkout")):
            return self._list_for_checkout(turn)
        if action in ("in", "out") and arg.isdigit():
            return (self._check_in if action == "in" else self._check_out)(turn, int(arg))
        if action in ("noloc", "acc") and turn.conversation.active_flow == self.name:
            return self.reprompt(turn)  # a button of an earlier step (the current step takes its own)
        return [Reply(text=turn.t("unknown_choice"))]

    # ------------------------------------------------------------ check-in
    def _list_for_checkin(self, turn: Turn, days: int) -> list[Reply]:
        today = jst_date(turn.message.timestamp)
        visits = service.expert_visits(turn.session, turn.person.id, ("planned",), today, days)
        if not visits:
            return [Reply(text=turn.t("visits_none_today", day=f"{today:%m/%d}"),
                          options=[] if days else [Option(label=turn.t("visits_other_days"),
                                                          value="visits:checkin_week")])]
        return [Reply(text=turn.t("visits_pick_checkin"),
                      options=[Option(label=self._visit_label(turn, v), value=f"visits:in:{v.id}") for v in visits])]

    def _check_in(self, turn: Turn, visit_id: int) -> list[Reply]:
        return self._stamp(turn, visit_id, "checkin")

    # ----------------------------------------------------------- check-out
    def _list_for_checkout(self, turn: Turn) -> list[Reply]:
        today = jst_date(turn.message.timestamp)
        visits = service.expert_visits(turn.session, turn.person.id, ("checked_in",), today, 7)
        visits += [v for v in service.expert_visits(turn.session, turn.person.id, ("planned",), today, 0)
                   if v not in visits]
        if not visits:
            return [Reply(text=turn.t("visits_none_to_checkout"))]
        return [Reply(text=turn.t("visits_pick_checkout"),
                      options=[Option(label=self._visit_label(turn, v), value=f"visits:out:{v.id}") for v in visits])]

    def _check_out(self, turn: Turn, visit_id: int) -> list[Reply]:
        return self._stamp(turn, visit_id, "checkout")

    def _stamp(self, turn: Turn, visit_id: int, which: str) -> list[Reply]:
        """Record the check-in/out time now (the message's timestamp), then ask for the location."""
        visit = self._own_visit(turn, visit_id)
        if visit is None:
            return [Reply(text=turn.t("visits_error_not_found"))]
        rules = self._rules(turn, visit)
        try:
            if which == "checkin":
                flags = service.check_in(turn.session, rules, visit, turn.message.timestamp, turn.person.id)
            else:
                flags = service.check_out(turn.session, visit, turn.message.timestamp, turn.person.id)
        except service.VisitError as error:
            return [Reply(text=turn.t(f"visits_error_{error.reason}"))]
        turn.start_flow(self.name, {"step": f"{which}_location", "visit_id": visit.id})
        moment = visit.checkin_at if which == "checkin" else visit.checkout_at
        assert moment is not None
        lines = [turn.t(f"visits_{which.replace('check', 'checked_')}", company=visit.company.name,
                        time=jst_time(moment))]
        lines += self._warnings(turn, visit, rules, flags)
        if which == "checkout" and visit.needs_certificate:
            lines.append(turn.t("visits_needs_certificate"))
        if turn.message.location:  # the platform sent the location with the command itself
            return [Reply(text="\n".join(lines))] + self._location(turn, visit, rules, which)
        lines.append(turn.t("visits_send_location"))
        return [Reply(text="\n".join(lines), options=self._location_options(turn))]

    # ---------------------------------------------------------------- flow
    def steps(self) -> dict[str, Step]:
        """The check-in/check-out and confirmation flow, one row per step: every step re-prompts."""
        def ask(key: str, options: Callable[[Turn], list[Option]] | None = None) -> Callable[[Turn], list[Reply]]:
            def prompt(turn: Turn) -> list[Reply]:
                shown = options(turn) if options else []
                return [Reply(text=turn.t(key), options=shown, free_input=not shown)]
            return prompt

        def buttons(prefix: str) -> Callable[[Turn], bool]:
            return lambda turn: (turn.message.choice or "").startswith(prefix)

        return {
            "checkin_location": Step(ask("visits_send_location", self._location_options),
                                     self._expert(self._parse_location), next=("checkin_noloc_reason",),
                                     expects=buttons("visits:noloc")),
            "checkin_noloc_reason": Step(ask("visits_ask_no_location_reason"),
                                         self._expert(self._parse_noloc_reason), free_text=True),
            "checkout_location": Step(ask("visits_send_location", self._location_options),
                                      self._expert(self._parse_location),
                                      next=("checkout_noloc_reason", "minutes"), expects=buttons("visits:noloc")),
            "checkout_noloc_reason": Step(ask("visits_ask_no_location_reason"),
                                          self._expert(self._parse_noloc_reason), next=("minutes",),
                                          free_text=True),
            "minutes": Step(ask("visits_ask_minutes"), self._expert(self._parse_minutes), next=("accompanied",)),
            "accompanied": Step(ask("visits_ask_accompanied", self._yes_no_options),
                                self._expert(self._parse_accompanied),
                                next=("accompanied_minutes", "not_accompanied_reason"),
                                expects=buttons("visits:acc:")),
            "accompanied_minutes": Step(ask("visits_ask_accompanied_minutes"),
                                        self._expert(self._parse_accompanied_minutes)),
            "not_accompanied_reason": Step(ask("visits_ask_not_accompanied_reason"),
                                           self._expert(self._parse_not_accompanied_reason), free_text=True),
            "code_confirm": Step(self._prompt_code_confirm, lambda turn: None),  # waits for a button
            "dispute_note": Step(ask("visits_ask_dispute_note"), self._parse_dispute_note, free_text=True),
            "code_name": Step(ask("visits_ask_confirmer_name"),
                              lambda turn: self._confirm_with_name(turn, turn.flow_state), free_text=True),
        }

    def _expert(self, parse: Callable[[Turn, Visit, ProgramRules], list[Reply] | None]
                ) -> Callable[[Turn], list[Reply] | None]:
        """An expert's step: their own visit, locked, and its fiscal year's rules."""
        def run(turn: Turn) -> list[Reply] | None:
            visit = self._own_visit(turn, int(turn.flow_state.get("visit_id", 0)))
            if visit is None:
                turn.end_flow("closed")
                return [Reply(text=turn.t("visits_error_not_found"))]
            return parse(turn, visit, self._rules(turn, visit))
        return run

    def _parse_location(self, turn: Turn, visit: Visit, rules: ProgramRules) -> list[Reply] | None:
        which = str(turn.flow_state.get("step", "")).removesuffix("_location")
        if turn.message.location:
            return self._location(turn, visit, rules, which)
        if turn.message.choice == "visits:noloc" or turn.text in NO_LOCATION_WORDS:
            turn.set_flow_state(turn.flow_state | {"step": f"{which}_noloc_reason"})
            return [Reply(text=turn.t("visits_ask_no_location_reason"), free_input=True)]
        return None

    def _parse_noloc_reason(self, turn: Turn, visit: Visit, rules: ProgramRules) -> list[Reply] | None:
        if not turn.text:
            return [Reply(text=turn.t("visits_ask_no_location_reason"), free_input=True)]
        which = str(turn.flow_state.get("step", "")).removesuffix("_noloc_reason")
        service.record_location(turn.session, rules, visit, which, None, None, turn.text)
        return self._after_location(turn, visit, which, [turn.t("visits_location_reason_saved")])

    def _parse_minutes(self, turn: Turn, visit: Visit, rules: ProgramRules) -> list[Reply] | None:
        return self._minutes(turn, visit, turn.flow_state)

    def _parse_accompanied(self, turn: Turn, visit: Visit, rules: ProgramRules) -> list[Reply] | None:
        answer = self._yes_no(turn)
        if answer is None:
            return None if turn.text else self._ask_accompanied(turn)
        next_step = "accompanied_minutes" if answer else "not_accompanied_reason"
        turn.set_flow_state(turn.flow_state | {"step": next_step, "accompanied": answer})
        key = "visits_ask_accompanied_minutes" if answer else "visits_ask_not_accompanied_reason"
        return [Reply(text=turn.t(key), free_input=True)]

    def _parse_accompanied_minutes(self, turn: Turn, visit: Visit, rules: ProgramRules) -> list[Reply] | None:
        minutes = parse_duration_minutes(turn.text)
        if minutes is None:
            return None if looks_like_question(turn.text) else [
                Reply(text=turn.t("visits_bad_minutes"), free_input=True)]
        return self._finish_checkout(turn, visit, rules, turn.flow_state, minutes, None)

    def _parse_not_accompanied_reason(self, turn: Turn, visit: Visit, rules: ProgramRules) -> list[Reply] | None:
        if not turn.text:
            return [Reply(text=turn.t("visits_ask_not_accompanied_reason"), free_input=True)]
        return self._finish_checkout(turn, visit, rules, turn.flow_state, None, turn.text)

    def _prompt_code_confirm(self, turn: Turn) -> list[Reply]:
        visit = service.lock(turn.session, int(turn.flow_state.get("visit_id", 0)))
        return [self.confirmation_request(turn, visit, turn.locale)] if visit is not None else []

    def _location(self, turn: Turn, visit: Visit, rules: ProgramRules, which: str) -> list[Reply]:
        location = turn.message.location
        assert location is not None
        flags = service.record_location(turn.session, rules, visit, which, location.lat, location.lon)
        lines = [turn.t("visits_location_saved"), *self._warnings(turn, visit, rules, flags)]
        return self._after_location(turn, visit, which, lines)

    def _after_location(self, turn: Turn, visit: Visit, which: str, lines: list[str]) -> list[Reply]:
        if which == "checkin":
            turn.end_flow("finished")
            return [Reply(text="\n".join(lines))]
        turn.set_flow_state({"step": "minutes", "visit_id": visit.id})
        return [Reply(text="\n".join(lines)), Reply(text=turn.t("visits_ask_minutes"), free_input=True)]

    def _minutes(self, turn: Turn, visit: Visit, state: dict[str, Any]) -> list[Reply] | None:
        minutes = parse_duration_minutes(turn.text)
        if minutes is None or minutes <= 0 or minutes > 24 * 60:
            return None if turn.text.endswith("?") else [Reply(text=turn.t("visits_bad_minutes"), free_input=True)]
        if visit.checkin_at and visit.checkout_at:
            elapsed = int((visit.checkout_at - visit.checkin_at).total_seconds() // 60)
            if minutes > elapsed + 5:
                return [Reply(text=turn.t("visits_minutes_too_long", elapsed=elapsed), free_input=True)]
        turn.set_flow_state(state | {"step": "accompanied", "minutes": minutes})
        return self._ask_accompanied(turn)

    def _ask_accompanied(self, turn: Turn) -> list[Reply]:
        return [Reply(text=turn.t("visits_ask_accompanied"), options=self._yes_no_options(turn))]

    def _finish_checkout(self, turn: Turn, visit: Visit, rules: ProgramRules, state: dict[str, Any],
                         accompanied_minutes: int | None, reason: str | None) -> list[Reply]:
        minutes = int(state["minutes"])
        service.record_support(visit, minutes, bool(state.get("accompanied")), accompanied_minutes, reason)
        turn.audit("visit.support_recorded", subject_type="visit", subject_id=visit.id,
                   data={"minutes": minutes, "accompanied": bool(state.get("accompanied"))})
        turn.end_flow("finished")
        fee = service.estimated_fee(turn.session, visit, turn.services.settings.visits.rules_file)
        replies = [Reply(text=turn.t("visits_recorded", minutes=format_minutes(minutes, turn.locale),
                                     billable=format_minutes(billable_minutes(minutes, rules), turn.locale),
                                     fee=f"{fee:,}"))]
        return replies + self._request_confirmation(turn, visit, rules)

    # ------------------------------------------------------- confirmation
    def _request_confirmation(self, turn: Turn, visit: Visit, rules: ProgramRules) -> list[Reply]:
        contacts = service.company_contacts(turn.session, visit.company_id)
        sent = 0
        for contact in contacts:
            request = self.confirmation_request(turn, visit, contact.locale or turn.locale)
            try:
                send_to_person(turn.session, contact.id, [request], verified_only=True, program=visit.program)
                sent += 1
            except NoChannel:
                continue
        if sent:
            turn.audit("visit.confirmation_requested", subject_type="visit", subject_id=visit.id,
                       data={"contacts": sent})
            return [Reply(text=turn.t("visits_confirmation_sent", count=sent))]
        code = link_codes.issue(turn.session, "visit_confirm", hours=rules.confirmation_code_hours,
                                visit_id=visit.id)
        turn.audit("visit.confirmation_code_issued", subject_type="visit", subject_id=visit.id)
        url = f"{turn.services.settings.web.public_base_url.rstrip('/')}/?code={code}"
        return [Reply(text=turn.t("visits_confirmation_code", code=code, hours=rules.confirmation_code_hours),
                      links=[Link(label=turn.t("visits_confirmation_link"), url=url)])]

    @staticmethod
    def confirmation_request(turn: Turn, visit: Visit, locale: str) -> Reply:
        day = jst_date(visit.checkout_at or visit.checkin_at or turn.message.timestamp)
        today = jst_date(turn.message.timestamp)
        start = jst_time(visit.checkin_at) if visit.checkin_at else (visit.planned_start or "")
        end = jst_time(visit.checkout_at) if visit.checkout_at else (visit.planned_end or "")
        text = t("visits_confirm_request", locale,
                 day_label=t("visits_today", locale) if day == today else f"{day:%m月%d日} ",
                 span=f"{start}-{end}" if start or end else "", expert=visit.expert.display_name or "-",
                 company=visit.company.name, institution=visit.institution or "-")
        return Reply(text=text, options=[Option(label=t("visits_confirm", locale), value=f"visits:confirm:{visit.id}"),
                                         Option(label=t("visits_dispute", locale), value=f"visits:dispute:{visit.id}")])

    def _sme_answer(self, turn: Turn, action: str, visit_id: int) -> list[Reply]:
        visit = service.lock(turn.session, visit_id)
        if visit is None:
            return [Reply(text=turn.t("visits_error_not_found"))]
        state = turn.flow_state if turn.conversation.active_flow == self.name else {}
        via_code = state.get("step") == "code_confirm" and state.get("visit_id") == visit.id
        if not via_code and not service.may_confirm(turn.session, turn.person, visit):
            return [Reply(text=turn.t("visits_not_yours"))]
        if visit.status != "checked_out":
            reason = "already_confirmed" if visit.status == "confirmed" else "not_checked_out"
            return [Reply(text=turn.t(f"visits_error_{reason}"))]
        method = "code" if via_code else "chat"
        if turn.person.id == visit.expert_person_id:  # the expert's own identities never confirm
            return [Reply(text=turn.t("visits_own_visit"))]
        if action == "dispute":
            turn.start_flow(self.name, {"step": "dispute_note", "visit_id": visit.id, "method": method,
                                        "code_id": state.get("code_id")})
            return [Reply(text=turn.t("visits_ask_dispute_note"), free_input=True)]
        if via_code:  # who confirms with a code is recorded: the name they type, their address and browser
            turn.start_flow(self.name, {"step": "code_name", "visit_id": visit.id, "code_id": state.get("code_id")})
            return [Reply(text=turn.t("visits_ask_confirmer_name"), free_input=True)]
        self._consume_code(turn, state)
        service.confirm(turn.session, visit, turn.person.id, method)
        if turn.conversation.active_flow == self.name:
            turn.end_flow("finished")
        fee = service.visit_fee(turn.session, visit, turn.services.settings.visits.rules_file)
        self._tell_expert(turn, visit, "visits_confirmed_expert", fee=f"{fee:,}")
        return [Reply(text=turn.t("visits_confirmed_thanks"))]

    def _parse_dispute_note(self, turn: Turn) -> list[Reply] | None:
        state = turn.flow_state
        visit = service.lock(turn.session, int(state.get("visit_id", 0)))
        if visit is None or not turn.text:
            return [Reply(text=turn.t("visits_ask_dispute_note"), free_input=True)]
        self._consume_code(turn, state)
        service.dispute(turn.session, visit, turn.person.id, turn.text)
        turn.end_flow("finished")
        notify_staff(turn.session, "visit.disputed", turn.t("visits_dispute_staff", id=visit.id), turn.text,
                     subject_type="visit", subject_id=visit.id, actor_person_id=turn.person.id)
        self._tell_expert(turn, visit, "visits_dispute_expert")
        return [Reply(text=turn.t("visits_dispute_thanks"))]

    def _confirm_with_name(self, turn: Turn, state: dict[str, Any]) -> list[Reply]:
        name = turn.text.strip()
        if not name or len(name) > 100:
            return [Reply(text=turn.t("visits_ask_confirmer_name"), free_input=True)]
        visit = service.lock(turn.session, int(state.get("visit_id", 0)))
        if visit is None or visit.status != "checked_out":
            turn.end_flow("closed")
            return [Reply(text=turn.t("visits_error_not_checked_out"))]
        if turn.person.id == visit.expert_person_id:
            turn.end_flow("closed")
            return [Reply(text=turn.t("visits_own_visit"))]
        evidence = service.record_code_confirmation(turn.session, visit, turn.person.id, name, turn.message.client)
        self._consume_code(turn, state)
        service.confirm(turn.session, visit, turn.person.id, "code")
        turn.end_flow("finished")
        if evidence.flagged:
            notify_staff(turn.session, "visit.confirmation_flagged",
                         turn.t("visits_confirmation_flagged_staff", id=visit.id, reason=evidence.flag_reason),
                         f"{name} / {evidence.client_ip or '-'} / {evidence.user_agent or '-'}",
                         subject_type="visit", subject_id=visit.id, actor_person_id=turn.person.id)
        fee = service.visit_fee(turn.session, visit, turn.services.settings.visits.rules_file)
        self._tell_expert(turn, visit, "visits_confirmed_expert", fee=f"{fee:,}")
        return [Reply(text=turn.t("visits_confirmed_thanks"))]

    def _consume_code(self, turn: Turn, state: dict[str, Any]) -> None:
        code_id = state.get("code_id")
        if code_id:
            row = turn.session.get(LinkCode, code_id)
            if row is not None and row.used_at is None:
                link_codes.consume(row, turn.person.id)

    def _tell_expert(self, turn: Turn, visit: Visit, key: str, **values: str) -> None:
        expert = turn.session.get(Person, visit.expert_person_id)
        assert expert is not None
        text = t(key, expert.locale or turn.locale, company=visit.company.name,
                 day=f"{visit.planned_date:%m/%d}", **values)
        try:
            send_to_person(turn.session, expert.id, [Reply(text=text)], verified_only=True, program=visit.program)
        except NoChannel:  # the expert has no linked account any more: staff see it in the report
            pass

    # -------------------------------------------------------------- helpers
    def _is_linked_expert(self, turn: Turn) -> bool:
        return turn.person.role == Role.EXPERT.value and turn.identity().verified

    def _own_visit(self, turn: Turn, visit_id: int) -> Visit | None:
        visit = service.lock(turn.session, visit_id)
        if visit is None or visit.expert_person_id != turn.person.id:
            return None
        return visit

    def _rules(self, turn: Turn, visit: Visit) -> ProgramRules:
        return rules_for(visit.planned_date, turn.services.settings.visits.rules_file)

    def _warnings(self, turn: Turn, visit: Visit, rules: ProgramRules, flags: list[str]) -> list[str]:
        lines = []
        for flag in flags:
            key = f"visits_warn_{flag}"
            if flag == "over_yearly_limit":
                ordinal = service.dispatch_ordinal(turn.session, visit.company_id, visit.planned_date, visit.id)
                lines.append(turn.t(key, ordinal=ordinal, limit=rules.max_dispatches_per_fiscal_year))
            elif flag.endswith("_location_missing"):
                continue
            else:
                lines.append(turn.t(key, planned=f"{visit.planned_date:%m/%d}",
                                    tolerance=f"{rules.location_tolerance_m:,.0f}"))
        return lines

    def _visit_label(self, turn: Turn, visit: Visit) -> str:
        start = f" {visit.planned_start}" if visit.planned_start else ""
        company: Company = visit.company
        return f"{visit.planned_date:%m/%d}{start} {company.name}"[:40]

    def _location_options(self, turn: Turn) -> list[Option]:
        return [Option(label=turn.t("visits_no_location"), value="visits:noloc")]

    def _yes_no_options(self, turn: Turn) -> list[Option]:
        return [Option(label=turn.t("visits_yes"), value="visits:acc:yes"),
                Option(label=turn.t("visits_no"), value="visits:acc:no")]

    def _yes_no(self, turn: Turn) -> bool | None:
        choice = turn.message.choice or ""
        if choice.startswith("visits:acc:"):
            return choice.endswith(":yes")
        word = turn.text.lower().rstrip("。.!！")
        if word in YES_WORDS:
            return True
        if word in NO_WORDS:
            return False
        return None


@link_codes.redeemer("visit_confirm")
def confirm_with_code(turn: Turn, row: LinkCode) -> list[Reply]:
    """An SME without a linked account opened the expert's code: show the visit and ask to confirm."""
    visit = service.lock(turn.session, row.visit_id or 0)
    if visit is None or visit.status != "checked_out":
        return [Reply(text=turn.t("visits_error_not_checked_out"))]
    if turn.person.id == visit.expert_person_id:  # the expert's own identities never confirm
        return [Reply(text=turn.t("visits_own_visit"))]
    turn.start_flow(VisitsHandler.name, {"step": "code_confirm", "visit_id": visit.id, "code_id": row.id})
    return [VisitsHandler.confirmation_request(turn, visit, turn.locale)]
