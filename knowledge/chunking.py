"""Structure-aware chunking for Japanese manuals and calls for proposals.

Government documents arrive as Markdown or as text pulled out of PDFs, where
lines are wrapped mid-sentence and blank lines fall inside sentences. So we
(1) rebuild logical lines: a wrapped line is joined to the previous one unless
that one ends a sentence or the new line opens a structural item; (2) track
the heading path through Markdown headings and the numbering systems these
documents use (Ⅰ., 1., (1), ①, イ., 【…】, <…>), nesting them in the order
they first appear; (3) pack whole sentences into chunks of a target size
inside one section, so no chunk ever starts or ends inside a sentence.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from bot.text import normalize_document

#: A passage of a few sentences: long enough to hold a fact with its context, short enough that BM25 and the
#: answer's sentence pool stay about one topic (set by hand in the first version).
TARGET_CHARS = 380
#: A passage may run past the target to keep a sentence whole, up to half as long again.
MAX_CHARS = 560
#: A line longer than this is prose, not a heading (the manuals' headings are a phrase, rarely over ~40).
HEADING_MAX_CHARS = 48

_SENTENCE_END = re.compile(r"[。．！？!?]$|[。．]\s*[)）」』]$")
_SENTENCE_ENDS = "。！？!?"
_OPENING = "(（「『【［"
_CLOSING = ")）」』】］"
#: A bracket left open this long is a stray one (a PDF line lost its other half), not an aside.
_MAX_ASIDE_CHARS = 160
#: A numbered line that is prose wrapped by the PDF, not a heading: a sentence ends inside it
#: (「(3)予算規模:6,000,000円を上限とします。なお、…」) or it breaks off after a comma.
_RUNS_ON = re.compile(r"。(?![)）」』])(?=.)|[、,]$")
_MD_HEADING = re.compile(r"^(#{1,6})\s*(.+?)\s*#*$")
_BOLD_LINE = re.compile(r"^\*\*(.+?)\*\*$")
_MARKERS: list[tuple[str, re.Pattern[str]]] = [
    # An appendix (「(別紙1)」「別記」) starts over at the top: it does not belong to the last section.
    ("appendix", re.compile(r"^[(（]?(?:別紙|別添|別記|別表)\s*\d{0,2}[)）]?$")),
    ("roman", re.compile(r"^(?:[IVX]{1,4}|[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ])[.．、\s]\s*\S")),
    ("chapter", re.compile(r"^第\s*\d+\s*[章節条]")),
    ("number", re.compile(r"^\d{1,2}[.．](?!\d)\s*\S")),
    ("paren_number", re.compile(r"^[(（]\d{1,2}[)）]\s*\S")),
    ("note", re.compile(r"^[(（]注\s*\d{1,2}[)）]\s*\S")),
    ("half_paren_number", re.compile(r"^\d{1,2}[)）]\s*\S")),
    ("circled", re.compile(r"^[①-⑳]\s*\S")),
    ("katakana", re.compile(r"^[ア-ンｱ-ﾝ][.．、]\s*\S")),
    ("paren_katakana", re.compile(r"^[(（][ア-ン][)）]\s*\S")),
    ("alpha", re.compile(r"^[a-zA-Z][.．)]\s*\S")),
    ("bracket", re.compile(r"^【[^】]{1,30}】$")),
    ("angle", re.compile(r"^[<＜〈][^>＞〉]{1,30}[>＞〉]$")),
    ("symbol", re.compile(r"^[◇◆■□●○◎▼▽]\s*\S")),
]
#: A label in brackets then a short title: 「【B2】経営支援機関向け 人材支援力向上ワークショップ」,
#: 「<事業区分A>人材戦略構築支援事業」. Prose that cites a label (「【A1】事業のStep02に参加を希望する企業に対し、」)
#: has a comma or a full stop and stays prose; a label then a value (「【開催日時】令和7年3月3日」) is a row.
_LABELLED = re.compile(r"^([【<＜〈])([^】>＞〉]{1,12})[】>＞〉]\s*(?!令和|平成|\d)[^、,。\s][^、,。]*$")
#: The number of an item such as 「3)」「(1)」「a.」, whose bracket is not part of the text.
_ITEM_NUMBER = re.compile(r"^[(（]?[0-9A-Za-z①-⑳ア-ン]{1,3}[)）]")
_LIST_ITEM = re.compile(r"^(?:[-*+・•]\s*|[※注]\s*|\d+[.．)]\s|[(（]\d+[)）]|[①-⑳]|[ア-ン][.．、])")
_TABLE_ROW = re.compile(r"^\|.*\|$")
#: Where an HTML list item starts (a list the converter left on one line).
_LI_SPLIT = re.compile(r"(?=<li[\s>])")
_MARKUP = [
    (re.compile(r"\*\*"), ""),
    # A footnote converted from a PDF or Word file: its own line keeps its number as a note (「※1 …」); its mark
    # in the sentence it annotates is dropped (「…低いものとします<sup>1</sup>。」 reads as the sentence).
    (re.compile(r"^<sup>\s*([^<]{1,4}?)\s*</sup>\s*"), r"※\1 "),
    (re.compile(r"<sup>[^<]{1,4}</sup>"), ""),
    (re.compile(r"</?(?:sup|sub)>"), ""),
    (re.compile(r"</?(?:b|i|u|small|strong|em|span|p|br|ul|ol|div|a)(?:\s[^>]*)?/?>"), " "),
    (re.compile(r"<li(?:\s[^>]*)?>"), " ・"),
    (re.compile(r"</li>"), " "),
    (re.compile(r"\s{2,}"), " "),
    (re.compile(r"\[([^\]]+)\]\((?:[^)]+)\)"), r"\1"),
    (re.compile(r"\\([_*\[\]()#])"), r"\1"),
    (re.compile(r"^[-*+]\s+(?=[・•])"), ""),
]


@dataclass
class ChunkDraft:
    section: str
    page: int | None
    text: str
    #: Set for a curated FAQ entry: the question it answers and its own answer.
    question: str | None = None
    answer: str | None = None


@dataclass
class _Line:
    text: str
    page: int | None
    heading: tuple[str, str] | None  # (marker type, heading text)


def _clean(line: str) -> str:
    line = normalize_document(line)
    for pattern, replacement in _MARKUP:
        line = pattern.sub(replacement, line)
    # Entities last, once the tags are gone: 「&lt;事業開発・企画&gt;」 is a label in brackets, not markup.
    return html.unescape(line).strip()


def _heading_of(raw: str, clean: str) -> tuple[str, str] | None:
    stripped = normalize_document(raw)
    match = _MD_HEADING.match(stripped)
    if match:
        return f"md{len(match.group(1))}", _clean(match.group(2))
    bold = _BOLD_LINE.match(stripped)
    if bold and len(clean) <= HEADING_MAX_CHARS and not _SENTENCE_END.search(clean):
        return "bold", clean
    if len(clean) > HEADING_MAX_CHARS or _SENTENCE_END.search(clean) or "|" in clean or _RUNS_ON.search(clean):
        return None
    if _closes_more_than_opens(clean):  # the tail of a wrapped line: 「ス、企業文化・風土を変革し、…確立)を…」
        return None
    for kind, pattern in _MARKERS:
        if pattern.match(clean):
            return kind, clean
    labelled = _LABELLED.match(clean)
    if labelled:
        return f"labelled{labelled.group(1)}{_label_shape(labelled.group(2))}", clean
    return None


def _closes_more_than_opens(text: str) -> bool:
    depth = 0
    for char in _ITEM_NUMBER.sub("", text):
        if char in _OPENING:
            depth += 1
        elif char in _CLOSING:
            depth -= 1
            if depth < 0:
                return True
    return False


def _label_shape(label: str) -> str:
    """Labels of one level share a shape (A1 and B2 → A0; A1-① and A3-⑤ → A0-①; Step01 → Step00), so
    【B2】 closes 【A1】 and its items while <Step01> nests under 【A1】."""
    shape = re.sub(r"[A-Z](?![a-z])", "A", label)
    shape = re.sub(r"\d", "0", shape)
    return re.sub(r"[①-⑳]", "①", shape)


def is_heading_line(line: str) -> bool:
    """A stored chunk line that was a heading when the document was read (「4. 説明会の開催」「【説明会開催要領】」)."""
    return _heading_of(line, _clean(line)) is not None


def _starts_structure(clean: str) -> bool:
    return bool(_LIST_ITEM.match(clean) or _TABLE_ROW.match(clean)
                or any(p.match(clean) for _, p in _MARKERS))


def _cells_line(raw: str) -> bool:
    """A line of cells separated by tabs (a table copied out of a PDF or a spreadsheet): a row of its own."""
    return "\t" in raw.strip()


def _html_items(raw: str) -> list[str]:
    """A line holding a whole HTML list (<ul><li>…<li>…) as one line per item: each item is a fact of its own."""
    if raw.count("<li") < 2:
        return [raw]
    return [part for part in _LI_SPLIT.split(raw) if _clean(part)]


def logical_lines(pages: list[list[str]]) -> list[_Line]:
    """Join wrapped lines back into paragraphs and items; mark headings. A row of tab-separated cells is
    never joined to its neighbours: it has no 。 to end it, yet each row is a fact of its own."""
    out: list[_Line] = []
    numbered = len(pages) > 1
    row_ended = False  # the previous line was a row of cells: nothing is joined to it
    for page_no, raw_lines in enumerate(pages, start=1):
        page = page_no if numbered else None
        for raw in (part for line in raw_lines for part in _html_items(line)):
            clean = _clean(raw)
            if not clean or set(clean) <= set("-=|: "):
                continue
            heading = _heading_of(raw, clean)
            if heading:
                out.append(_Line(heading[1], page, heading))
                row_ended = False
                continue
            previous = out[-1] if out else None
            cells = _cells_line(raw)
            if (
                previous is not None
                and not cells
                and not row_ended
                and previous.heading is None
                and len(previous.text) >= 20
                and not _SENTENCE_END.search(previous.text)
                and not _starts_structure(clean)
                and not _TABLE_ROW.match(previous.text)
            ):
                joiner = " " if previous.text[-1].isascii() and clean[0].isascii() else ""
                previous.text = previous.text + joiner + clean
                continue
            out.append(_Line(clean, page, None))
            row_ended = cells
    return out


_TITLE_END = re.compile(r"(募集要領|公募要領|仕様書案|仕様書|実施要領|実施要綱|要綱|マニュアル|手引き|ガイドブック)")
_GENERIC_TITLE = re.compile(r"^(仕様書案?|公募要領|募集要領|件名|目次|はじめに|概要|\d+\.\s*件名|【.*】|令和\d+年\d+月(\d+日)?)$")


def guess_title(lines: list[_Line], fallback: str) -> str:
    """The document's name as people cite it: the first specific line, cut after 「…募集要領」 etc. A Markdown
    heading is a whole title; a title never runs into the body text after it."""
    head = lines[:15]
    for index, line in enumerate(head):
        text = line.text.strip()
        if len(text) < 6 or _GENERIC_TITLE.match(text):
            continue
        # A title set on several short lines: read on until 「…要領」 etc. closes it, but not into a sentence
        # (「この案内は、…公募要領の本文に従ってください。」 is the body, even when it says 公募要領).
        parts = [text]
        if not (line.heading and line.heading[0].startswith("md")):
            for following in head[index + 1:index + 4]:
                if _SENTENCE_END.search(following.text):
                    break
                parts.append(following.text.strip())
        joined = "".join(parts)
        match = _TITLE_END.search(joined)
        if match and match.end() <= 140:
            return joined[: match.end()]
        return re.split(r"(?<=。)", text)[0][:100]
    return fallback


def split_sentences(text: str) -> list[str]:
    """Japanese sentence split after 。！？, never inside brackets: an aside 「（全国10者程度。以下
    「地域ハブ団体」という。）」 and a quotation belong to the sentence around them. Closing brackets
    right after the end stay with their sentence."""
    sentences: list[str] = []
    start = depth = opened_at = 0
    i = 0
    while i < len(text):
        char = text[i]
        if char in _OPENING:
            if depth == 0:
                opened_at = i
            depth += 1
        elif char in _CLOSING:
            depth = max(0, depth - 1)
        elif char in _SENTENCE_ENDS:
            if depth and i - opened_at > _MAX_ASIDE_CHARS:
                depth = 0
            if depth == 0:
                while i + 1 < len(text) and (text[i + 1] in _CLOSING or text[i + 1] in _SENTENCE_ENDS):
                    i += 1
                sentences.append(text[start:i + 1])
                start = i + 1
        i += 1
    sentences.append(text[start:])
    return [s for s in (p.strip() for p in sentences) if s]


def chunk_lines(lines: list[_Line], title: str) -> list[ChunkDraft]:
    """Pack sentences into section-bound chunks near TARGET_CHARS, never splitting a sentence."""
    stack: list[tuple[str, str]] = []
    chunks: list[ChunkDraft] = []
    buffer: list[str] = []
    buffer_page: int | None = None
    has_body = False

    def section() -> str:
        return " > ".join(text for _, text in stack if text != title)

    def flush() -> None:
        nonlocal buffer, buffer_page
        body = "\n".join(buffer).strip()
        if body:
            chunks.append(ChunkDraft(section=section(), page=buffer_page, text=body))
        buffer, buffer_page = [], None

    for line in lines:
        if line.heading:
            if has_body:  # headings with no text of their own stay, with the next heading's text
                flush()
            has_body = False
            kind = line.heading[0]
            kinds = [k for k, _ in stack]
            if kind.startswith("md"):
                level = int(kind[2:])
                stack = [(k, t) for k, t in stack if k.startswith("md") and int(k[2:]) < level]
            elif kind == "appendix":
                stack = []
            elif kind in kinds:
                stack = stack[: kinds.index(kind)]
            stack.append((kind, line.heading[1]))
            # The heading line is also text of its section: 「(1)日時 令和8年4月14日」 carries the answer.
            buffer.append(line.heading[1])
            if buffer_page is None:
                buffer_page = line.page
            continue
        has_body = True
        units = [line.text] if _TABLE_ROW.match(line.text) else split_sentences(line.text)
        for index, unit in enumerate(units):
            while len(unit) > MAX_CHARS:  # a runaway "sentence" (a table dump): cut at a comma
                cut = max(unit.rfind("、", 0, MAX_CHARS), unit.rfind(" ", 0, MAX_CHARS))
                cut = cut + 1 if cut > MAX_CHARS // 2 else MAX_CHARS
                head, unit = unit[:cut], unit[cut:]
                if buffer:
                    flush()
                buffer, buffer_page = [head], line.page
                flush()
            size = sum(len(b) for b in buffer)
            if buffer and size + len(unit) > TARGET_CHARS:
                flush()
            if buffer_page is None:
                buffer_page = line.page
            if index == 0 or not buffer:
                buffer.append(unit)
            else:
                buffer[-1] = buffer[-1] + unit
    flush()
    return chunks
