"""Which edition each source is: program, fiscal year and application window; and what follows from it.

A call for proposals is one edition of a program (令和7年度, one round). The bot must not answer a
question about another fiscal year or round from it, and must say so when a deadline it states has
passed. The edition is read from the document's cover (the fiscal year in its title, the first
application period or deadline in its text) or from a small metadata file beside it, which wins field by
field (a field it leaves out is still read from the cover):
- `<file name>.meta.yaml` beside one document (`guide.md.meta.yaml` for `guide.md`), or
- `editions.meta.yaml` in its folder, a list of editions each naming its documents (a program's guide and its
  FAQ are one edition); a document's own file wins over the folder's.
Keys: program, fiscal_year (令和8年度, 2026年度 or 2026: the western year the fiscal year starts in),
window_start, window_end (YYYY-MM-DD), and in the folder's file documents (file names in the folder).
Every `*.meta.yaml` is metadata, never a document (knowledge/ingest.py). The format is checked
(`EditionMeta`); a bad file is reported by `knowledge ingest` with the file, the key and what to write, and
the bot meanwhile reads that document's edition from its cover. docs/EDITIONS.md describes it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.i18n import DEFAULT_LOCALE, add_locale_dir, t
from bot.text import normalize

add_locale_dir(Path(__file__).resolve().parent / "locales")
log = logging.getLogger(__name__)

#: A metadata file's name ends with this: `<document>.meta.yaml` for one document, FOLDER_META for a folder.
META_SUFFIX = ".meta.yaml"
#: The folder's metadata file: the editions of the documents it names (no document is called `editions`).
FOLDER_META = "editions" + META_SUFFIX

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
    #: where it was read from: "cover", or the metadata file's name (as `knowledge ingest` shows it)
    origin: str = field(default="cover", compare=False)

    @property
    def fiscal_label(self) -> str:
        return fiscal_label(self.fiscal_year)

    def describe(self, locale: str = DEFAULT_LOCALE, iso_dates: bool = False) -> str:
        """「みどり市地域デジタル推進事業（令和8年度版、募集期間 令和8年5月1日〜令和8年6月19日）」, or in English
        "… (FY2026 edition, applications 2026-05-01 to 2026-06-19)". `iso_dates`: the dates as 2026-05-01 in
        Japanese too (the ingest table, read by staff and kept narrow); a chat reply writes them as people do."""
        parts = []
        if self.fiscal_year:
            parts.append(t("edition_year", locale, fiscal=self.fiscal_label, year=self.fiscal_year))
        start, end = (("" if day is None else day.isoformat() if iso_dates else self.date_label(day, locale))
                      for day in (self.window_start, self.window_end))
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
    """The first fiscal year `text` names (「令和8年度の募集要項」 -> 2026), None if it names none."""
    said = fiscal_years_said(normalize(text))
    return said[0][0] if said else None


def fiscal_years_said(text: str) -> list[tuple[int, str]]:
    """Each fiscal year `text` (normalized) names, with the words naming it: 「令和8年度」 -> (2026, "令和8年度")."""
    return [(year, match.group(0)) for match in _FISCAL_YEAR.finditer(text)
            if (year := _year(match.group(1), match.group(2), match.group(3))) is not None]


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
    """The edition of one source, from its metadata file beside it or else from its title and text (a month
    and day the cover writes without a year are in the metadata's fiscal year when it names one). A bad
    metadata file is logged and left out (its document's edition is read from its cover): `knowledge ingest`
    reports it (`check_metadata`)."""
    try:
        found_meta = metadata_for(Path(path)) if path else None
    except MetadataError as error:
        log.warning("%s", error)
        found_meta = None
    meta, origin = found_meta if found_meta is not None else (EditionMeta(), "cover")
    fiscal_year = meta.fiscal_year or fiscal_year_of(title) or fiscal_year_of(" ".join(lines[:20]))
    start = end = None
    for line in lines[:WINDOW_SEARCH_LINES]:
        if _WINDOW_LABEL.search(line):
            found = dates_in(line, fiscal_year)
            if found:
                start, end = (min(found), max(found)) if len(found) > 1 else (None, found[0])
                break
    return Edition(meta.program or program, fiscal_year, meta.window_start or start, meta.window_end or end,
                   origin=origin)


class MetadataError(ValueError):
    """A metadata file that cannot be read: the message names the file, the key and what to write."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class EditionMeta(BaseModel):
    """One edition's metadata; every key may be left out (it is then read from the document's cover)."""

    model_config = ConfigDict(extra="forbid")

    program: str | None = Field(default=None, min_length=1, max_length=200, description="The program's name.")
    fiscal_year: int | None = Field(default=None, ge=2000, le=2100,
                                    description="令和8年度, 2026年度 or 2026 (the western year it starts in).")
    window_start: date | None = Field(default=None, description="First day of the application window.")
    window_end: date | None = Field(default=None, description="Last day of the application window (deadline).")

    @field_validator("fiscal_year", mode="before")
    @classmethod
    def _fiscal_year(cls, value: object) -> object:
        if isinstance(value, str):
            text = normalize(value).strip()
            year = fiscal_year_of(text if "年度" in text else f"{text}年度")
            if year is None:
                raise ValueError(f"「{value}」は年度として読めません。令和8年度、2026年度、2026 のように書いてください")
            return year
        return value

    @model_validator(mode="after")
    def _window_in_order(self) -> EditionMeta:
        if self.window_start and self.window_end and self.window_end < self.window_start:
            raise ValueError(f"window_end（{self.window_end}）が window_start（{self.window_start}）より前です")
        return self


class FolderEdition(EditionMeta):
    documents: list[str] = Field(min_length=1, description="The documents (file names in the folder) it is.")


class FolderEditions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    editions: list[FolderEdition] = Field(min_length=1)


def _parse(path: Path, model: type[BaseModel]) -> BaseModel:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MetadataError(path, f"YAML として読めませんでした（{type(exc).__name__}）。"
                            f"key: value の形で書かれているかご確認ください") from exc
    if not isinstance(raw, dict):
        raise MetadataError(path, "資料のメタデータは key: value の形で書いてください"
                            "（program / fiscal_year / window_start / window_end）")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "(file)"
            if error["type"] == "extra_forbidden":
                message = ("この項目は使えません（program / fiscal_year / window_start / window_end"
                           + (" / documents" if model is FolderEditions else "") + " のどれかです）")
            elif error["type"].startswith("date"):
                message = f"「{error.get('input')}」は日付として読めません。2026-06-19 のように書いてください"
            else:
                message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
        raise MetadataError(path, "資料のメタデータに誤りがあります。ご確認ください\n  " + "\n  ".join(problems)) \
            from exc


def _folder_editions(folder: Path) -> dict[str, FolderEdition]:
    meta = folder / FOLDER_META
    if not meta.is_file():
        return {}
    parsed = _parse(meta, FolderEditions)
    assert isinstance(parsed, FolderEditions)
    named: dict[str, FolderEdition] = {}
    for edition in parsed.editions:
        for document in edition.documents:
            if document in named:
                raise MetadataError(meta, f"{document} が2つの版に書かれています。どちらか一つにしてください")
            named[document] = edition
    return named


def metadata_for(document: Path) -> tuple[EditionMeta, str] | None:
    """The metadata of one document and the name of the file it came from: its own `<name>.meta.yaml`, else its
    folder's `editions.meta.yaml` entry naming it; None when there is none. A bad file raises MetadataError."""
    own = document.with_name(document.name + META_SUFFIX)
    if own.is_file():
        parsed = _parse(own, EditionMeta)
        assert isinstance(parsed, EditionMeta)
        return parsed, own.name
    edition = _folder_editions(document.parent).get(document.name)
    return (edition, FOLDER_META) if edition is not None else None


def is_metadata(path: Path) -> bool:
    return path.name.endswith(META_SUFFIX)


def stated_fiscal_years(sources: list[Path]) -> list[tuple[Path, int, str]]:
    """(document, fiscal year, metadata file) for each document under `sources` whose metadata states a fiscal
    year. A program's file names its fiscal year too (`programs check` compares them): the bot declines other
    years by the documents' edition, so the two must tell one edition. Only metadata is read (the cover would
    need each document parsed); a bad metadata file is skipped here (`knowledge ingest` reports it)."""
    stated: list[tuple[Path, int, str]] = []
    for source in sources:
        documents = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
        for document in documents:
            if is_metadata(document) or not document.is_file():
                continue
            try:
                found = metadata_for(document)
            except MetadataError:
                continue
            if found is not None and found[0].fiscal_year is not None:
                stated.append((document, found[0].fiscal_year, found[1]))
    return stated


def check_metadata(folder: Path) -> list[tuple[Path, str]]:
    """Every metadata file under `folder` that is wrong, with why: unreadable, a key or value the format does
    not have, or a document named that is not there."""
    problems: list[tuple[Path, str]] = []
    for meta in sorted(p for p in folder.rglob("*" + META_SUFFIX) if p.is_file()):
        if any(part.startswith(".") for part in meta.relative_to(folder).parts):
            continue
        try:
            if meta.name == FOLDER_META:
                missing = [name for name in _folder_editions(meta.parent) if not (meta.parent / name).is_file()]
                if missing:
                    raise MetadataError(meta, f"documents に書かれた {', '.join(missing)} がこのフォルダにありません")
            else:
                _parse(meta, EditionMeta)
                if not meta.with_name(meta.name.removesuffix(META_SUFFIX)).is_file():
                    raise MetadataError(meta, f"対応する資料 {meta.name.removesuffix(META_SUFFIX)} がありません"
                                        f"（`<資料のファイル名>{META_SUFFIX}` と名付けてください）")
        except MetadataError as error:
            problems.append((meta, str(error)))
    return problems


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


def fiscal_label(year: int | None) -> str:
    """「令和8年度」 for 2026 (the western year a fiscal year starts in); "" for none."""
    if year is None:
        return ""
    return f"令和{year - REIWA_OFFSET}年度" if year > REIWA_OFFSET else f"{year}年度"


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
