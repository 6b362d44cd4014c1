"""FAQ declared once: answers free questions from the knowledge base; `madoguchi knowledge`."""

from typing import Any

from bot.capability import Capability
from handlers.faq.chat import FaqHandler


def _cli() -> dict[str, Any]:
    from knowledge.cli import knowledge_app  # heavy: loads chromadb and the embedder

    return {"knowledge": knowledge_app}


FAQ = Capability(name="faq", handler=FaqHandler(), cli=_cli)
