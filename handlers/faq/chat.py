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
the reply lists the programs to name (and, in the web chat, links their pages); where programs answer it
differently (「締切はいつですか」), it is answered with the question which program.
"""

from __future__ import annotations

from pathlib import Path
import logging

from bot.handler import Handler, Turn
from bot.i18n import add_locale_dir
from bot.messages import Link, Option, Reply
from bot.programs import ProgramCatalog, catalog_for

log = logging.getLogger(__name__)

ASK_HUMAN_VALUE = "contact:human"

add_locale_dir(Path(__file__).resolve().parent / "locales")


class FaqHandler(Handler):
    name = "faq"
    question_priority = 100

    def answer(self, turn: Turn) -> list[Reply] | None:
        human = Option(label=turn.t("faq_ask_human"), value=ASK_HUMAN_VALUE)
        catalog = catalog_for(turn.services)
        general = catalog.general_entry(turn.program_id)
        program_id = None if general else turn.program_id
        # A question at `/` that names one program (「地域DXの応募はいつまで？」) is that program's question.
        named = catalog.named_in(turn.text) if general else None
        if named is not None:
            program_id, general = named.id, False
        try:
            knowledge = turn.services.knowledge
            # The program decides the sources: its own and the shared ones (all at `/`, where the gate is
            # stricter: another program's fact can look like the asker's own).
            answer = knowledge.ask(turn.text, sources=catalog.source_filter(program_id), general=general)
        except Exception:
            log.exception("knowledge base unavailable")
            return [Reply(text=turn.t("faq_no_index"), options=[human], meta={"outcome": "unavailable"})]
        citations = [c.__dict__ | {"label": c.label()} for c in answer.citations]
        # `outcome` says what the user was told whatever its wording (answered, unsure, outside, ...).
        meta = {"confidence": answer.confidence, "confident": answer.confident, "citations": citations,
                "kind": answer.kind, "outcome": answer.outcome, "program": program_id}
        if answer.confident:
            feedback = [Option(label=turn.t("feedback_up"), value="feedback:up"),
                        Option(label=turn.t("feedback_down"), value="feedback:down")]
            return [Reply(text=answer.text_in(turn.locale), meta=meta, options=feedback)]
        if answer.kind == "ambiguous" and program_id is None:
            # Each program's own answer, so the user sees they differ and can name theirs.
            lines = [turn.t("faq_which_program"), *(f"・{line}" for line in answer.body.split("\n")),
                     turn.t("faq_name_program")]
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
        if general and outcome == "unsure":
            # At `/` the answer may be in one program's documents only: naming the program asks them alone.
            lines.append(turn.t("faq_name_program_to_narrow", programs="、".join(p.label for p in catalog)))
            links = program_pages(catalog, turn)
        lines.append(turn.t("faq_offer_human"))
        return [Reply(text="\n".join(lines), options=[human], links=links, meta=meta | {"outcome": outcome})]


def program_pages(catalog: ProgramCatalog, turn: Turn) -> list[Link]:
    """In the web chat, each program's own page (`/p/<id>/`), where questions are answered from its documents."""
    if turn.message.channel != "web":
        return []
    return [Link(label=turn.t("faq_program_page", program=p.label), url=f"/p/{p.id}/")
            for p in catalog if "web" in p.channels]
