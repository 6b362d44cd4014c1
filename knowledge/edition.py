"""Which edition each source is: program, fiscal year and application window; and what follows from it.

A call for proposals is one edition of a program (令和7年度, one round). The bot must not answer a
question about another fiscal year or round from it, and must say so when a deadline it states has
passed. The edition is read from the document's cover (the fiscal year in its title, the first
application period or deadline in its text) or from a small metadata file beside it,
`<file name>.meta.yaml` (keys: program, fiscal_year (western year the fiscal year starts in, or 令和N年度),
window_start, window_end (YYYY-MM-DD)), which wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from bot.text import normalize

JAPAN = ZoneInfo("Asia/Tokyo")
#: The Reiwa era began in 2019: 令和N年 = 2018 + N.
REIWA_OFFSET = 2018
#: The Heisei era began in 1989: 平成N年 = 1988 + N.
HEISEI_OFFSET = 1988
#: Lines of a document searched for its application window (the cover and the call's summary).
WINDOW_SEARCH_LINES = 400

_ERA_YEAR = re.compile(r"(令和|平成)\s*(\d+|元)\s*年")
_FISCAL_YEAR = re.compile(r"(?:(令和|平成)\s*(\d+|元)|(20\d{2}))\s*年度")
_FULL_DATE = re.compile(r"(?:(令和|平成)\s*(\d+|元)\s*年|(20\d{2})\s*年)\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
_MONTH_DAY = re.compile(r"(?<![年\d])(\d{1,2})\s*月\s*(\d{1,2})\s*日")
_WINDOW_LABEL = re.compile(r"募集期間|公募期間|受付期間|応募期間|提案書(?:の)?(?:提出)?期限|応募(?:の)?締切|提出期限|締切日|締め切り")
_DEADLINE_WORDS = re.compile(r"締切|締め切|期限|必着|まで|期間|〆")
#: A question about another edition: a fiscal year, a numbered round, or a year relative to now.
_ROUND = re.compile(r"([2-9２-９二三四五])\s*次(?:公募|募集|締切)?|第\s*([2-9])\s*回(?:公募|募集)")
_RELATIVE_EDITION = re.compile(r"去年|昨年|前年度|来年|次年度|前回の?(?:公募|募集)|次回の?(?:公募|募集)|過去の?(?:公募|募集)")
_KANJI_DIGITS = {"二": 2, "三": 3, "四": 4, "五": 5}


@dataclass(frozen=True)
class Edition:
    program: str
    fiscal_year: int | None = None  # the western year the fiscal year starts in (令和7年度 = 2025)
    window_start: date | None = None
    window_end: date | None = None

    @property
    def fiscal_label(self) -> str:
        if self.fiscal_year is None:
            return ""
        return f"令和{self.fiscal_year - REIWA_OFFSET}年度" if self.fiscal_year > REIWA_OFFSET else f"{self.fiscal_year}年度"

    def describe(self) -> str:
        parts = [self.program]
        if self.fiscal_year:
            parts.append(f"{self.fiscal_label}版")
        if self.window_start or self.window_end:
            start = self.window_start.isoformat() if self.window_start else ""
            end = self.window_end.isoformat() if self.window_end else ""
            parts.append(f"募集 {start}〜{end}")
        return "（".join([parts[0], "、".join(parts[1:]) + "）"]) if len(parts) > 1 else parts[0]


def _year(era: str | None, number: str | None, western: str | None) -> int | None:
    if western:
        return int(western)
    if era is None or number is None:
        return None
    n = 1 if number == "元" else int(number)
    return (REIWA_OFFSET if era == "令和" else HEISEI_OFFSET) + n


def fiscal_year_of(text: str) -> int | None:
    match = _FISCAL_YEAR.search(normalize(text))
    return _year(match.group(1), match.group(2), match.group(3)) if match else None


def dates_in(text: str, fiscal_year: int | None) -> list[date]:
    """Calendar dates written in `text`; a month and day without a year fall in the fiscal year
    (April to March) of the edition."""
    text = normalize(text)
    out: list[date] = []
    taken: list[tuple[int, int]] = []
    for match in _FULL_DATE.finditer(text):
        year = _year(match.group(1), match.group(2), match.group(3))
        try:
            out.append(date(year, int(match.group(4)), int(match.group(5))))  # type: ignore[arg-type]
        except ValueError:
            continue
        taken.append(match.span())
    if fiscal_year is not None:
        for match in _MONTH_DAY.finditer(text):
            if any(start <= match.start() < end for start, end in taken):
                continue
            month, day = int(match.group(1)), int(match.group(2))
            try:
                out.append(date(fiscal_year if month >= 4 else fiscal_year + 1, month, day))
            except ValueError:
                continue
    return out


def read_edition(title: str, program: str, lines: list[str], path: str | None = None) -> Edition:
    """The edition of one source, from its metadata file beside it or else from its title and text."""
    fiscal_year = fiscal_year_of(title) or fiscal_year_of(" ".join(lines[:20]))
    start = end = None
    for line in lines[:WINDOW_SEARCH_LINES]:
        if _WINDOW_LABEL.search(line):
            found = dates_in(line, fiscal_year)
            if found:
                start, end = (min(found), max(found)) if len(found) > 1 else (None, found[0])
                break
    edition = Edition(program, fiscal_year, start, end)
    meta = Path(f"{path}.meta.yaml") if path else None
    if meta is not None and meta.is_file():
        data = yaml.safe_load(meta.read_text(encoding="utf-8")) or {}
        year = data.get("fiscal_year", edition.fiscal_year)
        if isinstance(year, str):
            year = fiscal_year_of(year if "年度" in year else f"{year}年度")
        edition = Edition(str(data.get("program", program)), year,
                          _as_date(data.get("window_start")) or edition.window_start,
                          _as_date(data.get("window_end")) or edition.window_end)
    return edition


def _as_date(value: object) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        return date.fromisoformat(value)
    return None


def today_in_japan() -> date:
    return datetime.now(JAPAN).date()


def asks_other_edition(question: str, editions: list[Edition], corpus_text: str = "",
                       named: Edition | None = None) -> str | None:
    """Why the question is about an edition the bot does not hold (None when it is not): a fiscal year no
    source is, a numbered round the sources never mention, or a year relative to now (去年, 来年度)."""
    text = normalize(question)
    held = {e.fiscal_year for e in editions if e.fiscal_year}
    if named is not None and named.fiscal_year:  # the question names one program: its edition counts
        held = {named.fiscal_year}
    asked_year = fiscal_year_of(text)
    if asked_year is not None and held and asked_year not in held:
        return "year"
    round_match = _ROUND.search(text)
    if round_match:
        number = round_match.group(1) or round_match.group(2)
        digit = _KANJI_DIGITS.get(number, None) or int(normalize(number))
        if f"{digit}次" not in corpus_text and f"第{digit}回" not in corpus_text:
            return "round"
    if _RELATIVE_EDITION.search(text):
        return "relative"
    return None


def passed_dates(answer: str, edition: Edition | None, today: date) -> list[date]:
    """Dates an answer states as a deadline or period end that are before `today`."""
    if edition is None or not _DEADLINE_WORDS.search(answer):
        return []
    return sorted({d for d in dates_in(answer, edition.fiscal_year) if d < today})


def japanese_date(day: date) -> str:
    era = f"令和{day.year - REIWA_OFFSET}年" if day.year > REIWA_OFFSET else f"{day.year}年"
    return f"{era}{day.month}月{day.day}日"


#: A parenthesis closing a title longer than this (or a clause, with a comma) describes the program; it is
#: no part of the name people use.
PROGRAM_ASIDE_CHARS = 20


def program_name(title: str) -> str:
    """The program's name as people say it: the title without the year, the quotes and 「…に係る
    企画競争募集要領」 (「後継者支援ネットワーク事業」, 「…総合支援事業(専門家派遣)」)."""
    name = re.sub(r"^(?:令和|平成)\s*\d+\s*年度\s*(?:[(（][^)）]*[)）])?\s*", "", title)
    name = re.sub(r"\s*(?:に係る)?\s*(?:企画競争)?(?:募集要領|公募要領|仕様書案?)$", "", name)
    name = name.replace("「", "").replace("」", "")
    name = re.sub(rf"[(（](?:[^)）]{{{PROGRAM_ASIDE_CHARS + 1},}}|[^)）]*、[^)）]*)[)）]$", "", name)
    return name.strip() or title
