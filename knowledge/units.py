"""Answer units: what an answer is read from and shown as.

A passage (chunk) is cut into units, each a fact a person can read on its own:
- a sentence (with the heading it stands under);
- a list item with the sentence that introduces its list (「以下の場合には応募は無効となります。」 above
  「・提案書に虚偽が認められた場合」): an item alone does not say what holds for it;
- a sentence that opens a list, with the list's items when they fit (「次の書類を提出すること。」);
- a table row read with its column headers (「区分: 謝金 / 単価: 5,280円」), the headers taken from the
  table's first row even when it stands in an earlier passage;
- a curated FAQ entry: its answer, found by its question.
Units are computed once per passage and cached (a snapshot of the index never changes a passage).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

from knowledge.chunking import is_heading_line, split_sentences
from knowledge.tokenize import tokens

#: The longest text shown as one answer (the chat bubble stays readable; the evaluation reads 300 characters).
MAX_UNIT_CHARS = 300
#: How far above a list item its lead-in may stand (the list's other items in between).
LEAD_IN_REACH = 15
_BULLETS = ("・", "-", "*", "•", "●", "○", "■", "◆")
_ITEM = re.compile(r"^(?:[・\-*•●○■◆]\s*|[(（]?\d{1,2}[)）.．]\s*|[①-⑳]|[ア-ン][.．、)）]|[a-zA-Z][.．)）])")
#: A sentence that opens a list: 「以下の場合には」「次のいずれかに該当する」「下記の」, or ends in a colon.
_INTRODUCES_LIST = re.compile(r"(?:以下|次|下記)(?:の|に掲げる|のいずれか|のとおり)|[:：]$")
_TABLE_ROW = re.compile(r"^\|.*\|$")
#: A part of an over-long unit: about half a unit, so that a fact of up to half that length lies whole in one of
#: the overlapping parts.
PART_CHARS = MAX_UNIT_CHARS // 2
#: What a value is written with (digits, era and calendar words, a weekday in brackets, times, amounts, separators):
#: a line of nothing else states a value and leaves what it is the value of to the label above it.
_VALUE_ONLY = re.compile(r"^(?:[\d０-９,，.．:：/／~〜～\-－ 　()（）・]|令和|平成|元|年度?|月|日|時|分|秒|頃|円|万|千|億"
                         r"|[月火水木金土日](?=[)）])|午前|午後|まで|から|より)+$")
#: The numbering of a heading (「(2)」「6.」「【」) left off when it labels a value.
_HEADING_NUMBER = re.compile(r"^(?:[#\s]+|[(（]?[\d０-９]{1,2}[)）.．]\s*|[①-⑳]\s*|[【「])+|[】」]$")
#: Where a part may end: after a space between cells, a comma, a closing bracket, or before a list marker.
_PART_BOUNDARY = re.compile(r"\s+|[、,)）」』]|(?=[・●○■◆])")


@dataclass(frozen=True)
class Unit:
    text: str  # what is shown
    core: str  # the sentence, item or row itself (the evaluation's span is looked for here and in text)
    heading: str  # the nearest heading above it
    kind: str  # sentence | item | list | row | heading | faq
    position: int  # index of the unit in its passage
    question: str | None = None  # a FAQ entry's question

    # Sudachi runs on first use, not when a passage is cut: ingest needs only the units' texts (their vectors).
    @cached_property
    def tokens(self) -> frozenset[str]:
        return _tokens(self.text)

    @cached_property
    def heading_tokens(self) -> frozenset[str]:
        return _tokens(f"{self.heading} {self.question}" if self.kind == "faq" else self.heading)


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def table_row_text(headers: list[str] | None, row: str) -> str:
    """A table row read as a fact: each cell with its column's header (「単価: 5,280円」)."""
    cells = _cells(row)
    if not headers or len(headers) != len(cells):
        return " / ".join(c for c in cells if c)
    return " / ".join(f"{h}: {c}" if h and c and h != c else c for h, c in zip(headers, cells, strict=True) if c)


def header_before(texts: list[str]) -> list[list[str] | None]:
    """For passages of one document in order, the table header in force where each passage starts: a
    table's first row is its header, and a table continued in the next passage keeps it."""
    out: list[list[str] | None] = []
    header: list[str] | None = None
    previous_was_row = False
    for text in texts:
        out.append(header if previous_was_row else None)
        for line in text.split("\n"):
            if _TABLE_ROW.match(line.strip()):
                if not previous_was_row:
                    header = _cells(line)
                previous_was_row = True
            else:
                previous_was_row = False
    return out


def _is_item(sentence: str) -> bool:
    return sentence.startswith(_BULLETS) or bool(_ITEM.match(sentence))


def unbulleted(sentence: str) -> str:
    """A list item as a unit shows it: without its mark (the benchmarks compare writers' spans with it)."""
    return sentence.lstrip("・-*•●○■◆ ")


@lru_cache(maxsize=16384)
def _tokens(text: str) -> frozenset[str]:
    return frozenset(tokens(text))


@lru_cache(maxsize=8192)
def units_of(kind: str, section: str, text: str, answer: str | None,
             header: tuple[str, ...] | None = None) -> tuple[Unit, ...]:
    """The answer units of one passage (see the module docstring)."""
    if kind == "faq":
        question = text.split("\nA: ", 1)[0].removeprefix("Q: ")
        body = (answer or text).strip()
        return (Unit(body, body, section, "faq", 0, question),)
    heading = section.rsplit(" > ", 1)[-1] if section else ""
    table_header = list(header) if header else None
    previous_row = bool(header)
    placed: list[tuple[str, str, str]] = []  # (sentence, heading, kind)
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        if _TABLE_ROW.match(line):
            if not previous_row:
                table_header = _cells(line)
                previous_row = True
                placed.append((table_row_text(None, line), heading, "row"))
                continue
            placed.append((table_row_text(table_header, line), heading, "row"))
            continue
        previous_row = False
        if is_heading_line(line):
            placed.append((line, heading, "heading"))
            heading = line
            continue
        for sentence in split_sentences(line):
            placed.append((sentence, heading, "item" if _is_item(sentence) else "sentence"))
    units: list[Unit] = []
    for index, (sentence, under, unit_kind) in enumerate(placed):
        shown = unbulleted(sentence)
        if unit_kind == "sentence" and under and _VALUE_ONLY.match(shown):
            # A value on a line of its own (「令和6年6月3日(月)15時00分」 under 「(2)説明会の開催」) is read with the
            # label it stands under, as a table row is with its headers: alone it says nothing of what it is.
            shown = f"{_HEADING_NUMBER.sub('', under).strip()}：{shown}"
        if unit_kind == "item":
            lead = _lead_in(placed, index)
            if lead is not None:
                shown = f"{unbulleted(placed[lead][0])}\n・{shown}"
        units.append(_unit(shown, sentence, under, unit_kind, index))
        if len(shown) > MAX_UNIT_CHARS and unit_kind in ("sentence", "item"):
            units.extend(Unit(part, part, under, unit_kind, index) for part in _parts(shown))
        if unit_kind in ("sentence", "heading", "item") and _INTRODUCES_LIST.search(sentence):
            items = []
            for following in placed[index + 1:]:
                if following[2] != "item":
                    break
                items.append(unbulleted(following[0]))
            if items:
                whole = shown + "".join(f"\n・{item}" for item in items)
                if len(whole) <= MAX_UNIT_CHARS:
                    units.append(_unit(whole, sentence, under, "list", index))
    return tuple(units)


def _lead_in(placed: list[tuple[str, str, str]], index: int) -> int | None:
    """The sentence above a list item that introduces its list (itself maybe an item of an outer list:
    「② 以下の場合には応募は無効となります。」), across the list's other items."""
    j = index - 1
    while j >= 0 and index - j <= LEAD_IN_REACH:
        sentence, _, kind = placed[j]
        if kind == "row":
            return None
        if _INTRODUCES_LIST.search(sentence):
            return j
        if kind != "item":
            return None
        j -= 1
    return None


def _unit(shown: str, core: str, heading: str, kind: str, position: int) -> Unit:
    if len(shown) > MAX_UNIT_CHARS:
        shown = shown[: MAX_UNIT_CHARS - 1] + "…"
    return Unit(shown, core, heading, kind, position)


def _parts(text: str) -> list[str]:
    """An over-long run-on "sentence" (a table or a list the PDF flattened into one line without 。) in
    overlapping parts of at most PART_CHARS, cut where a cell or a phrase ends, so each fact in it is read
    whole by some part (the unit itself is cut at MAX_UNIT_CHARS)."""
    cuts = sorted({m.end() for m in _PART_BOUNDARY.finditer(text)} | {len(text)})
    parts: list[str] = []
    start = 0
    while start < len(text):
        end = max((c for c in cuts if start < c <= start + PART_CHARS), default=min(len(text), start + PART_CHARS))
        parts.append(text[start:end].strip())
        if end >= len(text):
            break
        # the next part starts about halfway into this one, at a boundary: a fact across the cut is whole in it
        start = min((c for c in cuts if c >= start + PART_CHARS // 2), default=end)
        start = min(start, end)
    return [p for p in parts if p]
