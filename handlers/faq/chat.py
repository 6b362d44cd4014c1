"""Program questions answered from the knowledge base, with the source, or an honest "not sure".

The answer is short Japanese with its citation (and a note when a deadline it states has passed).
When the knowledge base is not confident, the reply says so, quotes the one or two most related
excerpts with their section under 「関係しそうな記載」 when the pipeline found some (the learned one), or
names the closest sources (the classic one), and offers a person (「担当者に問い合わせる」); it never
presents a guess as an answer. A question nothing in the documents relates to is outside what this window
handles, said without listing documents; a question about another fiscal year or round says which
edition the bot holds. The conversation's program (its entry point: /p/<id>/, the program's LINE account
...) decides which sources answer: the program's own and the shared ones. At the general entry point of an
installation with several programs, a question that names one program is answered from that program's
sources; one that names none is answered from every program's by a stricter gate, and when it is not sure
the reply lists the programs to name (in the web chat it links their pages; on LINE, Telegram and Slack it
offers a button per program that asks the same question again in that program's documents: a phone keyboard
makes retyping it the hard part); where programs answer it differently (「締切はいつですか」), it is answered
with the question which program.
"""

from __future__ import annotations

from pathlib import Path
import logging

from bot.handler import Handler, Turn, answer_meta, asked_question
from bot.i18n import add_locale_dir
from bot.messages import Link, Option, Reply
from bot.programs import ProgramCatalog, catalog_for

log = logging.getLogger(__name__)

ASK_HUMAN_VALUE = "contact:human"
#: A button that asks the general entry point's last unsure question again in one program: "faq:ask:<program id>".
ASK_IN_PROGRAM = "faq:ask:"

add_locale_dir(Path(__file__).resolve().parent / "locales")


class FaqHandler(Handler):
    name = "faq"
    question_priority = 100
    choice_prefix = ASK_IN_PROGRAM

    def answer(self, turn: Turn) -> list[Reply] | None:
        catalog = catalog_for(turn.services)
        general = catalog.general_entry(turn.program_id)
        program_id = None if general else turn.program_id
        # A question at `/` that names one program (「地域DXの応募はいつまで？」) is that program's question.
        named = catalog.named_in(turn.text) if general else None
        if named is not None:
            program_id, general = named.id, False
        return self._reply(turn, turn.text, program_id, general)

    def on_command(self, turn: Turn) -> list[Reply]:
        """A program's button under an unsure answer at the general entry point: the same question, asked of
        that program's sources (its window's gate). The question is the conversation's own latest one, read
        from the database, never from the button (a Telegram button carries 64 bytes)."""
        program = catalog_for(turn.services).get((turn.message.choice or "").removeprefix(ASK_IN_PROGRAM))
        if program is None or turn.message.channel not in program.channels:
            return [Reply(text=turn.t("unknown_choice"))]
        question = self._unsure_question(turn)
        if question is None:
            return [Reply(text=turn.t("faq_ask_in_program_expired", program=program.label), free_input=True)]
        return self._reply(turn, question, program.id, False)

    def _unsure_question(self, turn: Turn) -> str | None:
        """The question of this conversation's latest answer (`Turn.latest_answer`), if the general entry point
        was not sure of it, or if it answered an earlier program's button (trying another program next is the
        point of the buttons); None when another question was answered since, or none is recent."""
        latest = turn.latest_answer()
        if latest is None:
            return None
        meta = answer_meta(latest)
        # the answer to an earlier button names its question; any other must be the general entry's unsure one
        if not meta.get("question") and (meta.get("program") is not None or meta.get("outcome") != "unsure"):
            return None
        return asked_question(turn.session, latest)

    def _reply(self, turn: Turn, question: str, program_id: str | None, general: bool) -> list[Reply]:
        """`question` answered from `program_id`'s sources (every program's at a general entry point)."""
        human = Option(label=turn.t("faq_ask_human"), value=ASK_HUMAN_VALUE)
        catalog = catalog_for(turn.services)
        try:
            knowledge = turn.services.knowledge
            # The program decides the sources: its own and the shared ones (all at `/`, where the gate is
            # stricter: another program's fact can look like the asker's own).
            answer = knowledge.ask(question, sources=catalog.source_filter(program_id), general=general)
        except Exception:
            log.exception("knowledge base unavailable")
            return [Reply(text=turn.t("faq_no_index"), options=[human], meta={"outcome": "unavailable"})]
        citations = [c.__dict__ | {"label": c.label()} for c in answer.citations]
        # `outcome` says what the user was told whatever its wording (answered, unsure, outside, ...);
        # `question`: what was asked, when it is not the text of the message replied to (a program's button).
        meta = {"confidence": answer.confidence, "confident": answer.confident, "citations": citations,
                "kind": answer.kind, "outcome": answer.outcome, "program": program_id} | (
                    {"question": question} if question != turn.text else {})
        if answer.confident:
            feedback = [Option(label=turn.t("feedback_up"), value="feedback:up"),
                        Option(label=turn.t("feedback_down"), value="feedback:down")]
            return [Reply(text=answer.text_in(turn.locale), meta=meta, options=feedback)]
        if answer.kind == "ambiguous" and program_id is None:
            # Each program's own answer, so the user sees they differ and can name theirs.
            lines = [turn.t("faq_which_program"), *(f"・{line}" for line in answer.body.split("\n")),
                     turn.t("faq_name_program")]
            # No program buttons: the programs that differ are the documents' (their titles), which need not be
            # the installation's programs.
            return [Reply(text="\n".join(lines), options=[human], meta=meta | {"outcome": "which_program"})]
        # Inside a program, programs answering differently is one more reason to be unsure.
        outcome = "unsure" if answer.kind == "ambiguous" else answer.outcome
        if outcome == "other_edition":
            lines = [answer.text_in(turn.locale)]
        elif outcome == "outside":
            # Nothing related: said once, with no list of unrelated documents.
            lines = [turn.t("faq_outside")]
        else:
            # Not sure: the related excerpts (their sources are the reply's citations), never a guess.
            lines = [turn.t("faq_not_sure")]
            if answer.excerpts:
                lines.append(answer.text_in(turn.locale))
        links: list[Link] = []
        options = [human]
        if general and outcome == "unsure":
            # At `/` the answer may be in one program's documents only: naming the program asks them alone.
            lines.append(turn.t("faq_name_program_to_narrow", programs="、".join(p.label for p in catalog)))
            links = program_pages(catalog, turn)
            options = [*program_buttons(catalog, turn), human]
        lines.append(turn.t("faq_offer_human"))
        return [Reply(text="\n".join(lines), options=options, links=links, meta=meta | {"outcome": outcome})]


def program_buttons(catalog: ProgramCatalog, turn: Turn) -> list[Option]:
    """Off the web (whose program pages are links) and the terminal (which offers the programs itself): a
    button per program on this channel that asks the question again in that program's documents."""
    if turn.message.channel in ("web", "cli"):
        return []
    return [Option(label=turn.t("faq_ask_in_program", program=p.label), value=ASK_IN_PROGRAM + p.id)
            for p in catalog if turn.message.channel in p.channels]


def program_pages(catalog: ProgramCatalog, turn: Turn) -> list[Link]:
    """In the web chat, each program's own page (`/p/<id>/`), where questions are answered from its documents."""
    if turn.message.channel != "web":
        return []
    return [Link(label=turn.t("faq_program_page", program=p.label), url=f"/p/{p.id}/")
            for p in catalog if "web" in p.channels]
