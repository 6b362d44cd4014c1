"""Read a file of any supported format into plain lines or FAQ entries.

Every loader returns a `LoadedDocument`: either text `pages` (lists of lines,
one list per PDF page, a single page otherwise) for the structural chunker,
or curated `faq` entries that become one chunk each. A file that cannot be
read raises `LoaderError`, which ingest reports and skips.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.text import normalize

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".text"}
HTML_SUFFIXES = {".html", ".htm"}
FAQ_SUFFIXES = {".csv", ".xlsx", ".yaml", ".yml"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | FAQ_SUFFIXES | {".pdf", ".docx"}

QUESTION_KEYS = ("question", "質問", "q", "問")
ANSWER_KEYS = ("answer", "回答", "a", "答")


class LoaderError(Exception):
    """The file is unreadable or malformed; the message says why, for the ingest report."""


@dataclass
class FaqEntry:
    question: str
    answer: str
    tags: list[str] = field(default_factory=list)
    source: str | None = None
    section: str = ""


@dataclass
class LoadedDocument:
    kind: str
    title: str | None = None
    pages: list[list[str]] = field(default_factory=list)
    faq: list[FaqEntry] = field(default_factory=list)


def load(path: Path) -> LoadedDocument:
    suffix = path.suffix.lower()
    try:
        if suffix in TEXT_SUFFIXES:
            return LoadedDocument(kind="markdown" if suffix != ".txt" else "text",
                                  pages=[_decode(path.read_bytes()).splitlines()])
        if suffix in HTML_SUFFIXES:
            return _load_html(path)
        if suffix == ".pdf":
            return _load_pdf(path)
        if suffix == ".docx":
            return _load_docx(path)
        if suffix == ".csv":
            return _faq_document(_rows_from_csv(path))
        if suffix == ".xlsx":
            return _faq_document(_rows_from_xlsx(path))
        if suffix in {".yaml", ".yml"}:
            return _load_yaml(path)
    except LoaderError:
        raise
    except Exception as exc:  # any parser failure is the file's fault, not the run's
        raise LoaderError(f"{type(exc).__name__}: {exc}") from exc
    raise LoaderError(f"unsupported file type: {suffix}")


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp932", "euc-jp"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise LoaderError("text is not UTF-8, Shift_JIS or EUC-JP")


def _load_html(path: Path) -> LoadedDocument:
    from bs4 import BeautifulSoup  # only for that file format

    soup = BeautifulSoup(_decode(path.read_bytes()), "html.parser")
    for tag in soup(["script", "style", "nav", "footer", "noscript"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else None
    lines: list[str] = []
    body = soup.body or soup
    for element in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "tr", "dt", "dd"]):
        if element.name == "tr":
            cells = [c.get_text(" ", strip=True) for c in element.find_all(["th", "td"])]
            lines.append("| " + " | ".join(cells) + " |")
        elif element.name.startswith("h"):
            lines.append("#" * int(element.name[1]) + " " + element.get_text(" ", strip=True))
        elif element.name == "li":
            lines.append("- " + element.get_text(" ", strip=True))
        elif not element.find_parent(["li", "td", "th"]):
            lines.append(element.get_text(" ", strip=True))
        lines.append("")
    if not any(line.strip() for line in lines):
        lines = body.get_text("\n").splitlines()
    return LoadedDocument(kind="html", title=title, pages=[lines])


def _load_pdf(path: Path) -> LoadedDocument:
    from pypdf import PdfReader  # only for that file format

    reader = PdfReader(str(path))
    pages = [(page.extract_text() or "").splitlines() for page in reader.pages]
    if not any(line.strip() for page in pages for line in page):
        raise LoaderError("PDF has no extractable text (scanned image?)")
    title = (reader.metadata.title if reader.metadata else None) or None
    return LoadedDocument(kind="pdf", title=title, pages=pages)


def _load_docx(path: Path) -> LoadedDocument:
    import docx  # only for that file format

    document = docx.Document(str(path))
    lines: list[str] = []
    for paragraph in document.paragraphs:
        style = (paragraph.style.name or "") if paragraph.style is not None else ""
        text = paragraph.text.strip()
        match = re.match(r"(?:Heading|見出し)\s*(\d)", style)
        if match and text:
            lines.append("#" * int(match.group(1)) + " " + text)
        elif style == "Title" and text:
            lines.append("# " + text)
        else:
            lines.append(text)
        lines.append("")
    for table in document.tables:
        for row in table.rows:
            lines.append("| " + " | ".join(cell.text.strip() for cell in row.cells) + " |")
        lines.append("")
    title = document.core_properties.title or None
    return LoadedDocument(kind="docx", title=title, pages=[lines])


def _pick(row: dict[str, object], keys: tuple[str, ...]) -> str:
    lowered = {normalize(str(k)).lower(): v for k, v in row.items() if k is not None}
    for key in keys:
        value = lowered.get(key)
        if value not in (None, ""):
            return str(value).strip()
    return ""


def _rows_from_csv(path: Path) -> list[dict[str, object]]:
    reader = csv.DictReader(io.StringIO(_decode(path.read_bytes())))
    if not reader.fieldnames:
        raise LoaderError("CSV has no header row")
    return list(reader)


def _rows_from_xlsx(path: Path) -> list[dict[str, object]]:
    from openpyxl import load_workbook  # only for that file format

    workbook = load_workbook(str(path), read_only=True, data_only=True)
    sheet = workbook.active
    rows = list(sheet.iter_rows(values_only=True)) if sheet is not None else []
    workbook.close()
    if not rows:
        raise LoaderError("workbook is empty")
    header = [str(h).strip() if h is not None else "" for h in rows[0]]
    return [dict(zip(header, row, strict=False)) for row in rows[1:]]


def _load_yaml(path: Path) -> LoadedDocument:
    data = yaml.safe_load(_decode(path.read_bytes()))
    title = None
    if isinstance(data, dict):
        title = data.get("title")
        data = data.get("faq") or data.get("entries") or data.get("questions")
    if not isinstance(data, list):
        raise LoaderError("YAML FAQ must be a list of {question, answer} or have a 'faq' list")
    document = _faq_document([row for row in data if isinstance(row, dict)])
    document.title = title
    return document


def _faq_document(rows: list[dict[str, object]]) -> LoadedDocument:
    entries: list[FaqEntry] = []
    for row in rows:
        question, answer = _pick(row, QUESTION_KEYS), _pick(row, ANSWER_KEYS)
        if not question or not answer:
            continue
        tags_raw = _pick(row, ("tags", "タグ"))
        tags = [t.strip() for t in re.split(r"[,、;]", tags_raw) if t.strip()] if tags_raw else []
        entries.append(FaqEntry(question=question, answer=answer, tags=tags,
                                source=_pick(row, ("source", "出典")) or None,
                                section=_pick(row, ("section", "category", "分類")) or ""))
    if not entries:
        raise LoaderError("no rows with both a question and an answer")
    return LoadedDocument(kind="faq", faq=entries)
