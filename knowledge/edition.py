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

from bot.i18n import DEFAULT_LOCALE, add_locale_dir, t
from bot.text import normalize

add_locale_dir(Path(__file__).resolve().parent / "locales")

JAPAN = ZoneInfo("Asia/Tokyo")
#: The Reiwa era began in 2019: 令和N年 = 2018 + N.
REIWA_OFFSET = 2018
#: The Heisei era began in 1989: 平成N年 = 1988 + N.
HEISEI_OFFSET = 1988
#: Lines of a document searched for its application window (the cover and the call's summary).
WINDOW_SEARCH_LINES = 400

_ERA_YEAR = re.compile(r"(令和|平成)\s*(\d+|元)\s*年")
_FISCAL_YEAR = re.compile(r"(?:(令和|平成)\s*(\d+|元)|(20\d{2}))\s*年度")
#: A date with its year (令和8年4月7日, 2026年4月7日), or a month and day whose year is another date's (4月28日,
#: 同年4月28日); a month after a year's number of another kind (「3年4月」 of a duration) is none.
_ANY_DATE = re.compile(r"(?:(?:(?P<era>令和|平成)\s*(?P<number>\d+|元)|(?P<western>20\d{2}))\s*年\s*|同年\s*|(?<![年\d]))"
                       r"(?P<month>\d{1,2})\s*月\s*(?P<day>\d{1,2})\s*日")
_WINDOW_LABEL = re.compile(r"募集期間|公募期間|受付期間|応募期間|提案書(?:の)?(?:提出)?期限|応募(?:の)?締切|提出期限|締切日|締め切り")
_DEADLINE_WORDS = re.compile(r"締切|締め切|期限|必着|まで|期間|〆")
#: A question about another edition: a fiscal year, a numbered round, or a year relative to now.
_ROUND = re.compile(r"([2-9２-９二三四五])\s*次(?:公募|募集|締切)?|第\s*([2-9])\s*回(?:公募|募集)")
#: A year relative to now counts only when it names the call itself (「去年の締切」「来年も募集」), not a fact of
#: the applicant's (「前年度の売上」).
_RELATIVE_EDITION = re.compile(r"(?:去年度?|昨年度?|前年度?|来年度?|次年度|再来年度?)[のはもにで]?\s*"
                               r"(?:公募|募集|締切|締め切|〆切|応募|受付|スケジュール|要領|版)"
                               r"|(?:前回|次回|過去)の?(?:公募|募集)")
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

    def describe(self, locale: str = DEFAULT_LOCALE) -> str:
        """「みどり市地域デジタル推進事業（令和8年度版、募集 2026-05-01〜2026-06-19）」, or in English
        "… (FY2026 edition, applications 2026-05-01 to 2026-06-19)"."""
        parts = []
        if self.fiscal_year:
            parts.append(t("edition_year", locale, fiscal=self.fiscal_label, year=self.fiscal_year))
        start = self.window_start.isoformat() if self.window_start else ""
        end = self.window_end.isoformat() if self.window_end else ""
        if start or end:
            key = "edition_window" if start and end else "edition_window_until" if end else "edition_window_from"
            parts.append(t(key, locale, start=start, end=end))
        if not parts:
            return self.program
        return t("edition_described", locale, program=self.program,
                 details=t("knowledge_list_separator", locale).join(parts))

    @staticmethod
    def date_label(day: date, locale: str = DEFAULT_LOCALE) -> str:
        """「令和8年7月31日」, or in English the ISO date (unambiguous to every reader)."""
        return japanese_date(day) if locale == DEFAULT_LOCALE else day.isoformat()


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
    """Calendar dates written in `text`, in the order written. A month and day without a year
    (「令和8年4月7日から4月28日まで」, 「同年4月28日」) are in the year written for the date before them (the
    next year when the month goes back: 「12月1日から1月15日」), else in the fiscal year (April to March) of
    the edition."""
    text = normalize(text)
    out: list[date] = []
    last: date | None = None
    for match in _ANY_DATE.finditer(text):
        month, day = int(match.group("month")), int(match.group("day"))
        year = _year(match.group("era"), match.group("number"), match.group("western"))
        written = year is not None or last is not None  # its year is written, here or just before
        if year is None and last is not None:
            year = last.year + (1 if month < last.month else 0)
        elif year is None and fiscal_year is not None:
            year = fiscal_year if month >= 4 else fiscal_year + 1
        if year is None:
            continue
        try:
            found = date(year, month, day)
        except ValueError:
            continue
        out.append(found)
        last = found if written else None
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
    """The dates an answer states as a deadline or period that are before `today`, when the last of them is
    (a period whose start has passed but whose end has not is still open: none)."""
    if edition is None or not _DEADLINE_WORDS.search(answer):
        return []
    stated = dates_in(answer, edition.fiscal_year)
    if not stated or max(stated) >= today:
        return []
    return sorted(set(stated))


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
