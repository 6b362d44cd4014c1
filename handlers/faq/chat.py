"""Program questions answered from the knowledge base, with the source, or an honest "not sure".

The answer is short Japanese with its citation (and a note when a deadline it states has passed).
When the knowledge base is not confident, the reply says so, quotes the one or two most related
excerpts with their section under 「関係しそうな記載」 for the user to read, and offers a person
(「担当者に問い合わせる」); it never presents a guess as an answer. A question nothing in the documents
relates to is outside what this window handles, said without listing documents; a question about another
fiscal year or round says which edition the bot holds.
"""

from __future__ import annotations

import logging

from bot.handler import Handler, Turn
from bot.i18n import add_strings
from bot.messages import Option, Reply

log = logging.getLogger(__name__)

ASK_HUMAN_VALUE = "contact:human"

add_strings("ja", {
    "faq_not_sure": "申し訳ありません。このご質問に確実にお答えできる情報が見つかりませんでした。",
    "faq_related": "関係しそうな記載：",
    "faq_outside": "このご質問は、この窓口で扱っている支援事業の資料の範囲外のようです。",
    "faq_offer_human": "担当者にお問い合わせいただけます。",
    "faq_ask_human": "担当者に問い合わせる",
    "faq_no_index": "現在、回答に使う資料が読み込まれていません。担当者にお問い合わせください。",
})
add_strings("en", {
    "faq_not_sure": "Sorry, I could not find information that answers this question reliably.",
    "faq_related": "Possibly related passages:",
    "faq_outside": "This question seems to be outside the support programs this window handles.",
    "faq_offer_human": "You can ask a staff member.",
    "faq_ask_human": "Ask a staff member",
    "faq_no_index": "No documents are loaded yet. Please ask a staff member.",
})


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
        if answer.kind == "other_edition":
            return [Reply(text="\n".join([answer.body, turn.t("faq_offer_human")]), options=[human], meta=meta)]
        if answer.kind == "outside" or not answer.excerpts:
            # Nothing related: no list of unrelated documents, only the honest scope and a person.
            return [Reply(text="\n".join([turn.t("faq_not_sure"), turn.t("faq_outside"), turn.t("faq_offer_human")]),
                          options=[human],
                          meta=meta)]
        lines = [turn.t("faq_not_sure"), turn.t("faq_related")]
        lines.extend(f"・「{excerpt.text}」（{excerpt.where}）" for excerpt in answer.excerpts)
        lines.append(turn.t("faq_offer_human"))
        return [Reply(text="\n".join(lines), options=[human], meta=meta)]
