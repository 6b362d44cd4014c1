"""The hearing sheet (ヒアリングシート): one question at a time, in chat, until it is submitted.

The response lives in `form_responses`, per person, so it survives a restart
and can be resumed on any channel the person is linked to; the conversation
only remembers which response it is walking through. Every answer is written
in the same transaction as the reply that asks the next question, so an
answer the user saw acknowledged is never lost.

The flow is a step table (`bot/flow.py`) generated from the form's YAML: one
step per question (its prompt, its parser by question type, the later questions
and the summary as where it leads) and the summary. Typed words understood
inside the flow: 「戻る」 (previous question), 「スキップ」 (optional questions),
「中断」 (declined: the engine leaves the flow), and at the summary an item
number to fix it or 「送信」. Anything that reads like a question instead of an
answer goes to the FAQ handler and the flow asks its question again; a link
code, 「メニュー」 or another capability's button is declined unless the
question reads it as its answer (an option of that name).
"""

from __future__ import annotations

from pathlib import Path
import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select

from handlers.hearing import reference_number
from handlers.hearing.answers import AnswerError, format_answer, parse_answer, validate_selection
from handlers.hearing.progress import applicable_questions, effective_answers, missing_required, next_question, position
from handlers.hearing.schema import Form, Question, catalog
from bot.flow import Step, StepFlow
from bot.handler import Turn
from bot.i18n import add_locale_dir, t
from bot.messages import Link, Option, Reply
from bot.notify import notify_staff
from bot.programs import Program, catalog_for, program_is
from bot.text import looks_like_question
from bot.storage.models import Person, utcnow
from handlers.hearing.models import FormResponse
from handlers.hearing.schema import FormDefinitionError

if TYPE_CHECKING:
    from bot.services import Services

SUMMARY = "__summary__"
PREFIX = "hearing:"
BACK_WORDS = frozenset({"戻る", "もどる", "戻って", "前へ", "前に戻る", "back"})
SKIP_WORDS = frozenset({"スキップ", "すきっぷ", "skip", "飛ばす", "とばす", "パス", "pass"})
SUBMIT_WORDS = frozenset({"送信", "送信する", "送信します", "提出", "提出する", "はい", "ok", "submit", "確定"})
EDIT_WORDS = frozenset({"修正", "修正する", "訂正", "変更", "edit"})
DONE_WORDS = frozenset({"決定", "確定", "以上", "以上です", "完了", "done"})
_EDIT_NUMBER = re.compile(r"^(?:修正|訂正|変更)?\s*(\d{1,3})\s*(?:番|番目)?(?:を?(?:修正|訂正|変更)(?:する|します|したい)?)?$")

add_locale_dir(Path(__file__).resolve().parent / "locales")

_T = TypeVar("_T")


def check_forms(services: Services) -> None:
    """Startup check: every form definition parses and each program's hearing form exists (the default
    program's is MADOGUCHI_HEARING__FORM unless its file names another)."""

    forms = catalog(services)  # raises FormDefinitionError naming the file and field
    for program in catalog_for(services):
        if program.hearing_form and forms.latest(program.hearing_form) is None:
            where = program.path or f"MADOGUCHI hearing_form={program.hearing_form}"
            raise FormDefinitionError(f"{where}: フォーム「{program.hearing_form}」がありません"
                                      f"（あるもの：{', '.join(forms.form_ids())}）")


class HearingHandler(StepFlow):
    name = "hearing"
    flow_label = "ヒアリングシート"
    triggers = ("ヒアリング開始", "ヒアリング", "ヒアリングシート", "ヒアリングを始める", "ヒアリング再開",
                re.compile(r"/hearing"))
    choice_prefix = PREFIX

    @staticmethod
    def form_id(turn: Turn) -> str | None:
        """The hearing form of the conversation's program (the default program's at a general entry point)."""
        program = turn.program or catalog_for(turn.services).default
        return program.hearing_form

    def _elsewhere(self, turn: Turn, form: Form) -> list[Reply]:
        """The form may not run on this channel (`channels:` in its YAML): offer the button that opens it where
        it may. On LINE that is the program's LIFF form, so personal data is typed into our page, never into
        LINE messages; elsewhere the program's web chat."""
        program = turn.program or catalog_for(turn.services).default
        links = []
        if form.allows("liff") and (url := program.liff_url()) and turn.message.channel == "line":
            links.append(Link(label=turn.t("hearing_open_form"), url=url))
        elif form.allows("web") and "web" in program.channels:
            base = turn.services.settings.web.public_base_url.rstrip("/")
            links.append(Link(label=turn.t("hearing_open_form"), url=f"{base}/p/{program.id}/#hearing"))
        if not links:
            return [Reply(text=turn.t("hearing_not_here"))]
        turn.audit("hearing.redirected", data={"form": form.id, "channel": turn.message.channel, "to": links[0].url})
        return [Reply(text=turn.t("hearing_use_form", title=form.title), links=links)]

    def menu_options(self, locale: str, person: Person | None = None, program: Program | None = None) -> list[Option]:
        if program is not None and not program.hearing_form:  # a program without a hearing sheet offers none
            return []
        return [Option(label=t("hearing_menu", locale), value="hearing:start")]

    # ------------------------------------------------------------ commands
    def on_command(self, turn: Turn) -> list[Reply]:
        choice = turn.message.choice or ""
        if not choice.startswith(self.choice_prefix) or choice == "hearing:start":
            return self._start(turn, restart=False)
        if choice == "hearing:restart":
            return self._start(turn, restart=True)
        response = self._active_response(turn)
        if response is None:
            return [Reply(text=turn.t("hearing_not_active"), options=self.menu_options(turn.locale, program=turn.program))]
        if turn.conversation.active_flow != self.name or turn.flow_state.get("response_id") != response.id:
            turn.start_flow(self.name, {"response_id": response.id})
        return self._press(turn, response, self._form(turn, response), choice)

    def _press(self, turn: Turn, response: FormResponse, form: Form, choice: str) -> list[Reply]:
        """One of the form's buttons (the current step's, or one of an earlier question: said so, re-asked)."""
        action, _, rest = choice.removeprefix(PREFIX).partition(":")
        qid, _, arg = rest.partition(":")
        if action == "back":
            return self._back(turn, response, form)
        if action == "submit":
            return self._submit(turn, response, form)
        if action == "edit":
            return self._ask_edit_number(turn, response, form)
        cursor = response.state.get("cursor")
        if qid != cursor:
            return self._ask_current(turn, response, form, lead=turn.t("hearing_stale_button"))
        question = form.question(qid)
        assert question is not None
        if action == "skip":
            return self._skip(turn, response, form, question)
        if action == "pick":
            return self._accept(turn, response, form, question, self._picked_value(question, arg))
        if action == "toggle":
            return self._toggle(turn, response, form, question, arg)
        if action == "done":
            return self._confirm_selection(turn, response, form, question)
        return self._ask_current(turn, response, form, lead=turn.t("unknown_choice"))

    # ---------------------------------------------------------------- flow
    def step_name(self, turn: Turn) -> str | None:
        response = self._flow_response(turn)
        return str(response.state.get("cursor")) if response is not None else None

    def table(self, turn: Turn) -> Mapping[str, Step]:
        response = self._flow_response(turn)
        if response is None:
            return {}
        form = self._form(turn, response)  # the services' parsed form: its table lives as long as it does
        return turn.services.shared(f"hearing.steps:{form.id}:{form.version}",
                                    lambda: self.checked(self.form_steps(form)))

    def form_steps(self, form: Form) -> dict[str, Step]:
        """The form's step table: one step per question, in form order, then the summary. An answer leads to a
        later question (the first that applies and is unanswered) or to the summary; the summary to any question
        (an item fixed by its number, a required one missing at 「送信」)."""
        ids = [q.id for q in form.questions]
        steps = {q.id: self._question_step(q, (*ids[i + 1:], SUMMARY)) for i, q in enumerate(form.questions)}
        steps[SUMMARY] = Step(prompt=self._in_context(self._show_summary), parse=self._in_context(self._parse_summary),
                              next=tuple(ids), expects=self._summary_expects)
        return steps

    def _question_step(self, question: Question, leads_to: tuple[str, ...]) -> Step:
        def prompt(turn: Turn, response: FormResponse, form: Form) -> list[Reply]:
            return self._ask_question(turn, response, form, question)

        def parse(turn: Turn, response: FormResponse, form: Form) -> list[Reply] | None:
            return self._parse_answer(turn, response, form, question)

        return Step(prompt=self._in_context(prompt), parse=self._in_context(parse), next=leads_to,
                    free_text=question.type == "text", expects=lambda turn: self._expects(turn, question))

    def _in_context(self, step: Callable[[Turn, FormResponse, Form], _T]) -> Callable[[Turn], _T]:
        """A step function of (turn, response, form), called with the turn: the response is this flow's, locked."""
        def run(turn: Turn) -> _T:
            response = self._flow_response(turn)
            assert response is not None, "a hearing step runs only with its response in progress"
            return step(turn, response, self._form(turn, response))
        return run

    def on_flow_message(self, turn: Turn) -> list[Reply] | None:
        response = self._flow_response(turn)
        if response is None:  # submitted or abandoned elsewhere (another linked channel)
            turn.end_flow("closed")
            return [Reply(text=turn.t("hearing_not_active"), options=self.menu_options(turn.locale, program=turn.program))]
        form = self._form(turn, response)
        if self.current_step(turn) is None:  # the form changed under a response in progress: find the next question
            return self._advance(turn, response, form)
        return super().on_flow_message(turn)

    def _expects(self, turn: Turn, question: Question) -> bool:
        """A button of this question (or 「戻る」), or a typed answer the question reads (an option named like a
        command: 「担当者と話したい」 as a choice), even though another handler would take it."""
        if turn.message.choice:
            action, qid = self._button(turn)
            return action == "back" or (action in ("pick", "toggle", "done", "skip") and qid == question.id)
        if question.type == "text" or not turn.text:
            return False
        try:
            parse_answer(question, turn.text, today=date.today())
        except AnswerError:
            return False
        return True

    def _button(self, turn: Turn) -> tuple[str | None, str]:
        """(action, question id) of one of the form's buttons; (None, "") for anything else."""
        choice = turn.message.choice or ""
        if not choice.startswith(PREFIX):
            return None, ""
        action, _, rest = choice.removeprefix(PREFIX).partition(":")
        return action, rest.partition(":")[0]

    def _summary_expects(self, turn: Turn) -> bool:
        """The summary's buttons, and the words it reads (「送信」, 「修正」, an item number, 「戻る」)."""
        if turn.message.choice:
            return self._button(turn)[0] in ("back", "submit", "edit")
        word = turn.text.lower().rstrip("。.!！")
        return word in SUBMIT_WORDS or word in EDIT_WORDS or word in BACK_WORDS or bool(_EDIT_NUMBER.fullmatch(word))

    def _parse_summary(self, turn: Turn, response: FormResponse, form: Form) -> list[Reply] | None:
        if self._button(turn)[0] is not None:
            return self._press(turn, response, form, turn.message.choice or "")
        if not turn.text:
            return self._ask_current(turn, response, form)
        word = turn.text.lower().rstrip("。.!！")
        if word in BACK_WORDS:
            return self._back(turn, response, form)
        return self._summary_message(turn, response, form, word)

    def _parse_answer(self, turn: Turn, response: FormResponse, form: Form, question: Question) -> list[Reply] | None:
        if self._button(turn)[0] is not None:
            return self._press(turn, response, form, turn.message.choice or "")
        text = turn.text
        if not text:
            return self._ask_current(turn, response, form)
        word = text.lower().rstrip("。.!！")
        if word in BACK_WORDS:
            return self._back(turn, response, form)
        if word in SKIP_WORDS:
            return self._skip(turn, response, form, question)
        if question.type == "multi_choice" and word in DONE_WORDS and response.state.get("selection"):
            return self._confirm_selection(turn, response, form, question)
        try:
            value = parse_answer(question, text, today=date.today())
        except AnswerError as error:
            if looks_like_question(text):
                return None
            return self._invalid(turn, response, form, error)
        # Say how a typed answer was read when it was read as something else (「約５０人」 -> 「50人」).
        shown = format_answer(question, value, turn.locale) if value is not None else ""
        lead = turn.t("hearing_recorded", value=shown) if shown and shown != text.strip() else None
        return self._accept(turn, response, form, question, value, lead=lead)

    def on_leave(self, turn: Turn) -> list[Reply]:
        response = self._flow_response(turn)
        if response is None:
            return []
        form = self._form(turn, response)
        answered = len([k for k in response.answers if form.question(k) is not None])
        turn.audit("hearing.paused", subject_type="form_response", subject_id=response.id,
                   data={"answered": answered})
        return [Reply(text=turn.t("hearing_saved", n=answered))]

    # ------------------------------------------------------------ starting
    def _start(self, turn: Turn, restart: bool) -> list[Reply]:
        form_id = self.form_id(turn)
        form = catalog(turn.services).latest(form_id) if form_id else None
        if form is None:
            return [Reply(text=turn.t("hearing_no_form"))]
        if not form.allows(turn.message.channel):
            return self._elsewhere(turn, form)
        existing = self._active_response(turn)
        replies: list[Reply] = []
        if existing is not None and not restart:
            turn.start_flow(self.name, {"response_id": existing.id})
            turn.audit("hearing.resumed", subject_type="form_response", subject_id=existing.id,
                       data={"channel": turn.message.channel})
            existing_form = self._form(turn, existing)
            cursor = existing.state.get("cursor")
            if cursor == SUMMARY:
                return self._show_summary(turn, existing, existing_form)
            n, total = position(existing_form, existing.answers, cursor or "")
            return self._ask_current(turn, existing, existing_form,
                                     lead=turn.t("hearing_resumed", n=n, total=total))
        if existing is not None:
            existing.status = "abandoned"
            turn.audit("hearing.abandoned", subject_type="form_response", subject_id=existing.id)
            replies.append(Reply(text=turn.t("hearing_restarted")))
        first = next_question(form, {})
        assert first is not None
        response = FormResponse(form_id=form.id, form_version=form.version, person_id=turn.person.id,
                                channel=turn.message.channel, program=turn.owner_program, status="in_progress",
                                answers={}, labels={},
                                state={"cursor": first.id, "history": []})
        turn.session.add(response)
        turn.session.flush()
        turn.start_flow(self.name, {"response_id": response.id})
        turn.audit("hearing.started", subject_type="form_response", subject_id=response.id,
                   data={"form": form.id, "version": form.version})
        _, total = position(form, {}, first.id)
        replies.append(Reply(text=turn.t("hearing_intro", title=form.title, description=form.description.strip(),
                                         total=total)))
        return replies + self._ask_current(turn, response, form)

    # ------------------------------------------------------------- answers
    def _accept(self, turn: Turn, response: FormResponse, form: Form, question: Question, value: Any,
                lead: str | None = None) -> list[Reply]:
        answers = dict(response.answers)
        answers[question.id] = value
        state = dict(response.state)
        history = [h for h in state.get("history", []) if h != question.id]
        state["history"] = [*history, question.id]
        state.pop("selection", None)
        state.pop("editing", None)
        response.answers = answers
        response.state = state
        return self._advance(turn, response, form, lead)

    def _skip(self, turn: Turn, response: FormResponse, form: Form, question: Question) -> list[Reply]:
        if question.required:
            return self._ask_current(turn, response, form, lead=turn.t("hearing_cannot_skip"))
        return self._accept(turn, response, form, question, None)

    def _advance(self, turn: Turn, response: FormResponse, form: Form, lead: str | None = None) -> list[Reply]:
        """Move to the next unanswered question, or to the summary when all are answered."""
        upcoming = next_question(form, response.answers)
        state = dict(response.state)
        state["cursor"] = upcoming.id if upcoming else SUMMARY
        response.state = state
        response.updated_at = utcnow()
        if upcoming is None:
            summary = self._show_summary(turn, response, form)
            if lead and summary:
                summary[0] = summary[0].model_copy(update={"text": f"{lead}\n\n{summary[0].text}"})
            return summary
        return self._ask_current(turn, response, form, lead=lead)

    def _back(self, turn: Turn, response: FormResponse, form: Form) -> list[Reply]:
        """「戻る」: from an item being corrected back to the summary, else to the previous question."""
        state = dict(response.state)
        state.pop("selection", None)
        if state.pop("editing", None) is not None:
            response.state = state
            return self._advance(turn, response, form)
        history = list(state.get("history", []))
        if not history:
            return self._ask_current(turn, response, form, lead=turn.t("hearing_first_question"))
        # The previous question is asked again with its current answer; answering it re-appends it.
        state["cursor"] = history.pop()
        state["history"] = history
        response.state = state
        return self._ask_current(turn, response, form)

    def _toggle(self, turn: Turn, response: FormResponse, form: Form, question: Question, arg: str) -> list[Reply]:
        value = self._picked_value(question, arg)
        state = dict(response.state)
        selection = list(state.get("selection", []))
        if value in selection:
            selection.remove(value)
        elif value is not None:
            selection.append(value)
        state["selection"] = selection
        response.state = state
        return self._ask_current(turn, response, form)

    def _confirm_selection(self, turn: Turn, response: FormResponse, form: Form, question: Question) -> list[Reply]:
        """The options toggled so far become the answer (「選択を確定」 or a typed 「決定」)."""
        try:
            value = validate_selection(question, list(response.state.get("selection", [])))
        except AnswerError as error:
            return self._invalid(turn, response, form, error)
        return self._accept(turn, response, form, question, value)

    def _invalid(self, turn: Turn, response: FormResponse, form: Form, error: AnswerError) -> list[Reply]:
        expected = turn.t(error.key, **error.values)
        return self._ask_current(turn, response, form, lead=turn.t("hearing_invalid", expected=expected))

    @staticmethod
    def _picked_value(question: Question, arg: str) -> Any:
        if question.type == "yes_no":
            return arg == "yes"
        if arg.isdigit() and int(arg) < len(question.options):
            return question.options[int(arg)].value
        return None

    # ---------------------------------------------------------- questions
    def _ask_current(self, turn: Turn, response: FormResponse, form: Form, lead: str | None = None) -> list[Reply]:
        """The current question as one message; `lead` (an error, 「再開します」) goes on top of it."""
        cursor = response.state.get("cursor")
        if cursor == SUMMARY:
            summary = self._show_summary(turn, response, form)
            return [Reply(text=lead)] + summary if lead else summary
        question = form.question(cursor or "")
        if question is None:
            return self._advance(turn, response, form)
        return self._ask_question(turn, response, form, question, lead)

    def _ask_question(self, turn: Turn, response: FormResponse, form: Form, question: Question,
                      lead: str | None = None) -> list[Reply]:
        """A question of the form (its step's prompt), with its position, help, options and current answer."""
        n, total = position(form, response.answers, question.id)
        section = form.section_of(question.id)
        lines = [lead + "\n"] if lead else []
        lines += [f"【{n}/{total}】{section.title if section else ''}",
                 question.prompt + ("" if question.required else turn.t("hearing_optional"))]
        if question.help:
            lines.append(question.help)
        if question.type in ("single_choice", "multi_choice"):
            lines.extend(f"{i}. {o.label}" for i, o in enumerate(question.options, start=1))
        if question.type == "multi_choice":
            lines.append(turn.t("hearing_choose_many"))
            selection = response.state.get("selection") or []
            if selection:
                labels = "、".join(question.option_label(v) for v in selection)
                lines.append(turn.t("hearing_selected", labels=labels))
        if question.example:
            lines.append(turn.t("hearing_example", example=question.example))
        if question.id in response.answers:
            lines.append(turn.t("hearing_current", value=format_answer(question, response.answers[question.id],
                                                                      turn.locale)))
        return [Reply(text="\n".join(lines), options=self._question_options(turn, response, question),
                      free_input=question.type not in ("single_choice", "yes_no"),
                      meta={"form": form.id, "question": question.id, "position": [n, total]})]

    def _question_options(self, turn: Turn, response: FormResponse, question: Question) -> list[Option]:
        qid = question.id
        options: list[Option] = []
        if question.type == "single_choice":
            options = [Option(label=o.label, value=f"hearing:pick:{qid}:{i}") for i, o in enumerate(question.options)]
        elif question.type == "multi_choice":
            selection = set(response.state.get("selection") or [])
            options = [Option(label=("✓ " if o.value in selection else "") + o.label, value=f"hearing:toggle:{qid}:{i}")
                       for i, o in enumerate(question.options)]
            options.append(Option(label=turn.t("hearing_confirm_selection"), value=f"hearing:done:{qid}"))
        elif question.type == "yes_no":
            options = [Option(label=turn.t("hearing_yes"), value=f"hearing:pick:{qid}:yes"),
                       Option(label=turn.t("hearing_no"), value=f"hearing:pick:{qid}:no")]
        if not question.required:
            options.append(Option(label=turn.t("hearing_skip"), value=f"hearing:skip:{qid}"))
        if response.state.get("history"):
            options.append(Option(label=turn.t("hearing_back"), value="hearing:back"))
        options.append(Option(label=turn.t("hearing_stop"), value="flow:leave"))
        return options

    # ------------------------------------------------------------- summary
    @staticmethod
    def _summary_items(response: FormResponse, form: Form) -> list[Question]:
        return applicable_questions(form, response.answers)

    def _show_summary(self, turn: Turn, response: FormResponse, form: Form) -> list[Reply]:
        items = self._summary_items(response, form)
        lines = [turn.t("hearing_summary_title", count=len(items))]
        current_section = None
        for number, question in enumerate(items, start=1):
            section = form.section_of(question.id)
            if section is not None and section.id != current_section:
                current_section = section.id
                lines.append(f"\n{section.title}")
            value = format_answer(question, response.answers.get(question.id), turn.locale)
            lines.append(f"{number}. {question.short_label}：{value}")
        options = [Option(label=turn.t("hearing_submit"), value="hearing:submit"),
                   Option(label=turn.t("hearing_edit"), value="hearing:edit"),
                   Option(label=turn.t("hearing_back"), value="hearing:back"),
                   Option(label=turn.t("hearing_stop"), value="flow:leave")]
        return [Reply(text="\n".join(lines), meta={"form": form.id, "summary": True}),
                Reply(text=turn.t("hearing_summary_help"), options=options, free_input=True)]

    def _summary_message(self, turn: Turn, response: FormResponse, form: Form, word: str) -> list[Reply] | None:
        if word in SUBMIT_WORDS:
            return self._submit(turn, response, form)
        if word in EDIT_WORDS:
            return self._ask_edit_number(turn, response, form)
        match = _EDIT_NUMBER.fullmatch(word)
        if match:
            return self._edit_item(turn, response, form, int(match.group(1)))
        if looks_like_question(turn.text):
            return None
        return self._show_summary(turn, response, form)[1:]

    def _ask_edit_number(self, turn: Turn, response: FormResponse, form: Form) -> list[Reply]:
        count = len(self._summary_items(response, form))
        return [Reply(text=turn.t("hearing_ask_edit_number", count=count), free_input=True,
                      options=[Option(label=turn.t("hearing_submit"), value="hearing:submit")])]

    def _edit_item(self, turn: Turn, response: FormResponse, form: Form, number: int) -> list[Reply]:
        items = self._summary_items(response, form)
        if not 1 <= number <= len(items):
            return [Reply(text=turn.t("hearing_no_such_item", n=number, count=len(items)), free_input=True)]
        question = items[number - 1]
        state = dict(response.state)
        state["cursor"] = question.id
        state["editing"] = question.id
        response.state = state
        # The old answer stays stored until a new one arrives: 「戻る」 or leaving must not lose it.
        return self._ask_current(turn, response, form)

    def _submit(self, turn: Turn, response: FormResponse, form: Form) -> list[Reply]:
        missing = missing_required(form, response.answers)
        if missing:
            state = dict(response.state)
            state["cursor"] = missing[0].id
            response.state = state
            return self._ask_current(turn, response, form,
                                     lead=turn.t("hearing_missing", label=missing[0].short_label))
        response.answers = effective_answers(form, response.answers)
        response.labels = {q.id: q.short_label for q in form.questions}
        response.status = "submitted"
        response.submitted_at = utcnow()
        state = dict(response.state)
        state.pop("editing", None)
        response.state = state
        number = reference_number(response.id)
        company = str(response.answers.get("company_name") or "-")
        notify_staff(turn.session, "hearing.submitted", turn.t("hearing_notification_title", number=number,
                                                                   company=company),
                     subject_type="form_response", subject_id=response.id, actor_person_id=turn.person.id,
                     data={"form": form.id, "version": form.version, "number": number})
        turn.audit("hearing.submitted", subject_type="form_response", subject_id=response.id,
                   data={"form": form.id, "version": form.version, "number": number})
        turn.end_flow("finished")
        return [Reply(text=turn.t("hearing_submitted", message=form.completion_message.strip(), number=number))]

    # -------------------------------------------------------------- lookup
    def _form(self, turn: Turn, response: FormResponse) -> Form:
        form = catalog(turn.services).get(response.form_id, response.form_version)
        assert form is not None, f"form {response.form_id} disappeared"
        return form

    def _active_response(self, turn: Turn) -> FormResponse | None:
        """The person's interview in progress, locked: two channels must not answer it at once."""
        query = (select(FormResponse)
                 .where(FormResponse.person_id == turn.person.id, FormResponse.status == "in_progress",
                        FormResponse.form_id == self.form_id(turn),
                        program_is(FormResponse.program, turn.owner_program, catalog_for(turn.services)))
                 .order_by(FormResponse.id.desc()).limit(1).with_for_update())
        return turn.session.execute(query).scalar_one_or_none()

    def _flow_response(self, turn: Turn) -> FormResponse | None:
        response_id = turn.flow_state.get("response_id")
        if response_id is None:
            return None
        response = turn.session.execute(
            select(FormResponse).where(FormResponse.id == response_id).with_for_update()
        ).scalar_one_or_none()
        if response is None or response.status != "in_progress" or response.person_id != turn.person.id:
            return None
        return response
