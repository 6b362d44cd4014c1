"""The monthly roll-up the secretariat submits: this month and fiscal-year cumulative figures.

Per expert, per applying institution and per company: visits, confirmed
visits, face-to-face hours, fees (with each expert's daily cap), visits
needing the paper certificate, and rule flags. Computed only from the visit
records, by planned date, so the report for any past month can be produced
again at any time (it is due by the end of the following month).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.cells import append_row, csv_bytes
from bot.programs import ProgramCatalog, program_in
from handlers.visits.models import Visit
from handlers.visits.rules import fiscal_year, fiscal_year_start
from handlers.visits.service import FLAG_LABELS, visit_fees
from bot.jst import jst_date, jst_time

STATUS_LABELS = {"planned": "予定", "checked_in": "チェックイン済", "checked_out": "チェックアウト済",
                 "confirmed": "企業確認済", "disputed": "相違あり", "cancelled": "取消"}


@dataclass
class Totals:
    visits: int = 0
    confirmed: int = 0
    minutes: int = 0
    fee_yen: int = 0
    needs_certificate: int = 0
    flagged: int = 0

    def add(self, visit: Visit, fee: int) -> None:
        self.visits += 1
        if visit.status == "confirmed":
            self.confirmed += 1
            self.minutes += visit.face_to_face_minutes or 0
            self.fee_yen += fee
        self.needs_certificate += int(visit.needs_certificate)
        self.flagged += int(bool(visit.flags))


@dataclass
class Row:
    group: str
    key: str
    label: str
    month: Totals = field(default_factory=Totals)
    cumulative: Totals = field(default_factory=Totals)


@dataclass
class MonthlyReport:
    month: str
    fiscal_year: int
    rows: list[Row]
    details: list[Visit]
    fees: dict[int, int]


def month_bounds(month: str) -> tuple[date, date]:
    year, number = (int(part) for part in month.split("-"))
    start = date(year, number, 1)
    end = date(year + (number == 12), number % 12 + 1, 1)
    return start, end


def build(session: Session, month: str, rules_file: Path | None = None, *, catalog: ProgramCatalog | None = None,
          programs: set[str] | None = None) -> MonthlyReport:
    """The report of `month`; with a `catalog`, of the visits of `programs` only (None = every program)."""
    start, end = month_bounds(month)
    year = fiscal_year(start)
    query = (select(Visit).options(selectinload(Visit.expert), selectinload(Visit.company))
             .where(Visit.planned_date >= fiscal_year_start(year), Visit.planned_date < end,
                    Visit.status != "cancelled"))
    if catalog is not None:
        query = query.where(program_in(Visit.program, programs, catalog))
    visits = list(session.execute(query.order_by(Visit.planned_date, Visit.id)).scalars())
    fees = visit_fees(visits, rules_file)
    groups: list[tuple[str, Callable[[Visit], tuple[str, str]]]] = [
        ("専門家", lambda v: (f"P{v.expert_person_id}", v.expert.display_name or f"#{v.expert_person_id}")),
        ("支援機関", lambda v: (v.institution or "-", v.institution or "（未設定）")),
        ("企業", lambda v: (f"C{v.company_id}", v.company.name)),
    ]
    rows: list[Row] = []
    for group, key_of in groups:
        table: dict[str, Row] = {}
        for visit in visits:
            key, label = key_of(visit)
            row = table.setdefault(key, Row(group, key, label))
            row.cumulative.add(visit, fees.get(visit.id, 0))
            if visit.planned_date >= start:
                row.month.add(visit, fees.get(visit.id, 0))
        rows.extend(sorted(table.values(), key=lambda r: r.label))
    details = [v for v in visits if v.planned_date >= start]
    return MonthlyReport(month, year, rows, details, fees)


SUMMARY_HEADER = ["区分", "名称", "当月 件数", "当月 確認済", "当月 対面時間(h)", "当月 謝金(円)", "当月 要誓約書",
                  "当月 要確認", "累計 件数", "累計 確認済", "累計 対面時間(h)", "累計 謝金(円)", "累計 要誓約書", "累計 要確認"]
DETAIL_HEADER = ["訪問ID", "予定日", "専門家", "企業", "支援機関", "状態", "チェックイン", "チェックアウト", "対面時間(分)",
                 "謝金(円)", "同行", "同行時間(分)", "同行なしの理由", "企業確認", "要誓約書", "確認事項"]


def _figures(totals: Totals) -> list[object]:
    return [totals.visits, totals.confirmed, round(totals.minutes / 60, 2), totals.fee_yen,
            totals.needs_certificate, totals.flagged]


def summary_rows(report: MonthlyReport) -> list[list[object]]:
    return [[row.group, row.label, *_figures(row.month), *_figures(row.cumulative)] for row in report.rows]


def detail_rows(report: MonthlyReport) -> list[list[object]]:
    def moment(value):  # type: ignore[no-untyped-def]
        return f"{jst_date(value):%m/%d} {jst_time(value)}" if value else ""

    rows = []
    for v in report.details:
        accompanied = "" if v.accompanied is None else ("あり" if v.accompanied else "なし")
        rows.append([f"V-{v.id}", v.planned_date.isoformat(), v.expert.display_name, v.company.name,
                     v.institution or "", STATUS_LABELS.get(v.status, v.status), moment(v.checkin_at),
                     moment(v.checkout_at), v.face_to_face_minutes, report.fees.get(v.id, 0), accompanied,
                     v.accompanied_minutes, v.not_accompanied_reason or "", moment(v.confirmed_at),
                     "要" if v.needs_certificate else "", "、".join(FLAG_LABELS.get(f, f) for f in v.flags or [])])
    return rows


def to_csv(report: MonthlyReport) -> bytes:
    return csv_bytes([[f"{report.month} 月次報告（{report.fiscal_year}年度累計）"], SUMMARY_HEADER,
                      *(list(row) for row in summary_rows(report))])


def to_xlsx(report: MonthlyReport) -> bytes:
    workbook = Workbook()
    summary = workbook.active
    summary.title = "集計"
    append_row(summary, [f"{report.month} 月次報告（{report.fiscal_year}年度累計）"])
    append_row(summary, list(SUMMARY_HEADER))
    for row in summary_rows(report):
        append_row(summary, list(row))
    details = workbook.create_sheet("明細")
    append_row(details, list(DETAIL_HEADER))
    for row in detail_rows(report):
        append_row(details, list(row))
    for sheet, header_row in ((summary, 2), (details, 1)):
        for cell in sheet[header_row]:
            cell.font = Font(bold=True)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
