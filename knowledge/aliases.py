"""Terms a document defines for itself, so a question may use either name.

Japanese calls and specifications name things once in full and then by a
short name: 「株式会社NTTデータ経営研究所(以下、事務局という)」,
「業務統括責任者(以下「プロジェクトマネージャー」という。)」. A user asks with
whichever name they saw (「事務局はどこ？」「業務統括責任者の条件は？」), while the
answer is written with the other one. Reading these definitions gives, per
document, pairs (long name, short name) that retrieval uses to expand the
question, and that answering uses to recognise the defining sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from knowledge.tokenize import surface_split

#: 「…(以下「Y」という。)」, 「…(以下、Y という)」, 「…(以下「Y」と総称する。)」, 「…(以下「Y」)」
_DEFINITION = re.compile(
    r"[(（]以下[、,]?\s*[「『\"]?(?P<short>[^」』\")）、。]{1,30}?)[」』\"]?\s*"
    r"(?:と(?:いう|言う|総称する|称する)|という)?[。.]?\s*[)）]"
)
_QUOTED_TAIL = re.compile(r"[「『]([^「」『』]{2,40})[」』]\s*$")
_BREAK = re.compile(r"[、。,.\n!?！？:：;；]")
_NOUNISH = {"名詞", "接頭辞", "接尾辞"}
#: A long name longer than this is a clause the definition follows, not a name (names in the manuals run to ~30).
LONG_MAX_CHARS = 40


@dataclass(frozen=True)
class Definition:
    long: str
    short: str


def _long_name(before: str) -> str:
    """The name being defined: the quoted name, or the noun compound that ends right before 「(以下」."""
    before = before.rstrip()
    quoted = _QUOTED_TAIL.search(before)
    if quoted:
        return quoted.group(1).strip()
    tail = _BREAK.split(before[-80:])[-1]
    morphemes = surface_split(tail)
    kept: list[str] = []
    for surface, _normalized, pos in reversed(morphemes):
        if pos not in _NOUNISH and not (pos == "補助記号" and surface in "・-"):
            break
        kept.append(surface)
    name = "".join(reversed(kept)).strip("・- ")
    return name if len(name) <= LONG_MAX_CHARS else ""


def definitions_in(text: str) -> list[Definition]:
    """Every 「long(以下「short」という。)」 in `text` (normalized document text)."""
    found = []
    for match in _DEFINITION.finditer(text):
        short = match.group("short").strip()
        long = _long_name(text[: match.start()])
        # A short name inside the long one (当局管内 → 管内) adds nothing to search: passages with either match it.
        if len(long) >= 2 and len(short) >= 2 and long not in short and short not in long:
            found.append(Definition(long=long, short=short))
    return found
