"""Program questions answered from the knowledge base, with the source, or an honest "not sure".

The answer is short Japanese with its citation (and a note when a deadline it states has passed).
When the knowledge base is not confident, the reply says so, quotes the one or two most related
excerpts with their section under 「関係しそうな記載」 when the pipeline found some (the learned one), or
names the closest sources (the classic one), and offers a person (「担当者に問い合わせる」); it never
presents a guess as an answer. A question nothing in the documents relates to is outside what this window
handles, said without listing documents; a question about another fiscal year or round says which
edition the bot holds. The conversation's program (its entry point: /p/<id>/, the program's LINE account
...) decides which sources answer: the program's own and the shared ones. Only at a general entry point,
a question that names no program, where programs answer it differently (「締切はいつですか」), is
answered with the question which program.
"""

from __future__ import annotations

from pathlib import Path
import logging

from bot.handler import Handler, Turn
from bot.i18n import add_locale_dir
from bot.messages import Option, Reply
from bot.programs import catalog_for

log = logging.getLogger(__name__)

ASK_HUMAN_VALUE = "contact:human"

add_locale_dir(Path(__file__).resolve().parent / "locales")


class FaqHandler(Handler):
    name = "faq"
    question_priority = 100

    def answer(self, turn: Turn) -> list[Reply] | None:
        human = Option(label=turn.t("faq_ask_human"), value=ASK_HUMAN_VALUE)
        try:
            knowledge = turn.services.knowledge
            # The conversation's program decides the sources: its own and the shared ones (all at `/`).
            answer = knowledge.ask(turn.text, sources=catalog_for(turn.services).source_filter(turn.program_id))
        except Exception:
            log.exception("knowledge base unavailable")
            return [Reply(text=turn.t("faq_no_index"), options=[human])]
        citations = [c.__dict__ | {"label": c.label()} for c in answer.citations]
        meta = {"confidence": answer.confidence, "confident": answer.confident, "citations": citations,
                "kind": answer.kind}
        if answer.confident:
            feedback = [Option(label=turn.t("feedback_up"), value="feedback:up"),
                        Option(label=turn.t("feedback_down"), value="feedback:down")]
            return [Reply(text=answer.text, meta=meta, options=feedback)]
        if answer.kind == "ambiguous" and turn.program_id is None:
            # Each program's own answer, so the user sees they differ and can name theirs.
            lines = [turn.t("faq_which_program"), *(f"・{line}" for line in answer.body.split("\n")),
                     turn.t("faq_name_program")]
            return [Reply(text="\n".join(lines), options=[human], meta=meta)]
        if answer.kind == "other_edition":
            return [Reply(text="\n".join([answer.body, turn.t("faq_offer_human")]), options=[human], meta=meta)]
        if answer.kind == "outside":
            # Nothing related: no list of unrelated documents, only the honest scope and a person.
            return [Reply(text="\n".join([turn.t("faq_not_sure"), turn.t("faq_outside"), turn.t("faq_offer_human")]),
                          options=[human],
                          meta=meta)]
        lines = [turn.t("faq_not_sure")]
        if answer.excerpts:
            lines.append(turn.t("faq_related"))
            lines.extend(f"・「{excerpt.text}」（{excerpt.where}）" for excerpt in answer.excerpts)
        else:
            closest = list(dict.fromkeys(c.label() for c in answer.citations[:3]))
            if closest:
                lines.append(turn.t("faq_closest"))
                lines.extend(f"・{label}" for label in closest)
        lines.append(turn.t("faq_offer_human"))
        return [Reply(text="\n".join(lines), options=[human], meta=meta)]
