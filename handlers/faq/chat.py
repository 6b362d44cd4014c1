"""Program questions answered from the knowledge base, with the source, or an honest "not sure".

The answer is short Japanese with its citation. When the knowledge base is not
confident, the reply says so, names the closest sources, and offers a person
(「担当者に問い合わせる」); it never presents a guess as an answer. A question that names no program,
where programs answer it differently (「締切はいつですか」), is answered with the question which program.
"""

from __future__ import annotations

import logging

from bot.handler import Handler, Turn, register
from bot.i18n import add_strings
from bot.messages import Option, Reply

log = logging.getLogger(__name__)

ASK_HUMAN_VALUE = "contact:human"

add_strings("ja", {
    "faq_not_sure": "申し訳ありません。このご質問に確実にお答えできる情報が見つかりませんでした。",
    "faq_closest": "関連しそうな資料：",
    "faq_offer_human": "担当者にお問い合わせいただけます。",
    "faq_ask_human": "担当者に問い合わせる",
    "faq_no_index": "現在、回答に使う資料が読み込まれていません。担当者にお問い合わせください。",
    "faq_which_program": "事業によってお答えが異なります。どの事業についてのご質問でしょうか。",
    "faq_name_program": "事業名を添えて、もう一度お尋ねください。",
})
add_strings("en", {
    "faq_not_sure": "Sorry, I could not find information that answers this question reliably.",
    "faq_closest": "Possibly related documents:",
    "faq_offer_human": "You can ask a staff member.",
    "faq_ask_human": "Ask a staff member",
    "faq_no_index": "No documents are loaded yet. Please ask a staff member.",
    "faq_which_program": "The answer depends on the program. Which program are you asking about?",
    "faq_name_program": "Please ask again with the program's name.",
})


@register
class FaqHandler(Handler):
    name = "faq"
    question_priority = 100

    def answer(self, turn: Turn) -> list[Reply] | None:
        human = Option(label=turn.t("faq_ask_human"), value=ASK_HUMAN_VALUE)
        try:
            knowledge = turn.services.knowledge
            answer = knowledge.ask(turn.text)
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
        if answer.kind == "ambiguous":
            # Each program's own answer, so the user sees they differ and can name theirs.
            lines = [turn.t("faq_which_program"), *(f"・{line}" for line in answer.body.split("\n")),
                     turn.t("faq_name_program")]
            return [Reply(text="\n".join(lines), options=[human], meta=meta)]
        lines = [turn.t("faq_not_sure")]
        closest = list(dict.fromkeys(c.label() for c in answer.citations[:3]))
        if closest:
            lines.append(turn.t("faq_closest"))
            lines.extend(f"・{label}" for label in closest)
        lines.append(turn.t("faq_offer_human"))
        return [Reply(text="\n".join(lines), options=[human], meta=meta)]
