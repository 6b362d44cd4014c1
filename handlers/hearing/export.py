"""Responses out to the secretariat: one row per response, one column per question, Japanese labels.

Columns follow the newest version of the form; questions that only older
versions asked are appended after them, so a form change never drops an old
answer from the export. Each response is formatted with the version it was
answered under. Times are shown in Japan time.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.cells import append_row, csv_bytes
from bot.programs import ProgramCatalog, program_in, program_is
from handlers.hearing.answers import format_answer
from handlers.hearing import reference_number
from handlers.hearing.schema import FormCatalog, Question
from bot.jst import jst_day_start_utc, to_jst
from handlers.hearing.models import FormResponse

FIXED_COLUMNS = ("受付番号", "状態", "送信日時", "開始日時", "様式の版", "チャネル")
STATUS_LABELS = {"in_progress": "回答中", "submitted": "送信済み", "abandoned": "破棄"}


@dataclass(frozen=True)
class Column:
    question_id: str
    label: str


def select_responses(session: Session, form_id: str | None, since: date | None = None,
                     status: str | None = "submitted", *, catalog: ProgramCatalog | None = None,
                     programs: set[str] | None = None) -> list[FormResponse]:
    """Responses of one form; `since` compares the submission (or start, for drafts) in Japan time.

    With a `catalog`, only responses of `programs` (None = every program) are read, and with no `form_id`
    each program's responses of its own hearing form (a program without a form has none)."""
    query = select(FormResponse)
    if catalog is not None:
        query = query.where(program_in(FormResponse.program, programs, catalog))
    if form_id is not None:
        query = query.where(FormResponse.form_id == form_id)
    else:
        if catalog is None:
            raise ValueError("a form id, or the programs catalog to take each program's form from")
        own = [program_is(FormResponse.program, p.id, catalog) & (FormResponse.form_id == p.hearing_form)
               for p in catalog if p.hearing_form and (programs is None or p.id in programs)]
        if not own:
            return []
        query = query.where(or_(*own))
    if status:
        query = query.where(FormResponse.status == status)
    if since is not None:
        moment = FormResponse.submitted_at if status == "submitted" else FormResponse.started_at
        query = query.where(moment >= jst_day_start_utc(since))
    return list(session.execute(query.order_by(FormResponse.id)).scalars())


def columns_for(catalog: FormCatalog, form_id: str, responses: list[FormResponse]) -> list[Column]:
    columns: dict[str, str] = {}
    latest = catalog.latest(form_id)
    for form in ([latest] if latest else []) + list(reversed(catalog.versions(form_id))):
        for question in form.questions:
            columns.setdefault(question.id, question.short_label)
    for response in responses:
        for qid in response.answers:
            columns.setdefault(qid, str(response.labels.get(qid) or qid))
    return [Column(qid, label) for qid, label in columns.items()]


def _question(catalog: FormCatalog, response: FormResponse, qid: str) -> Question | None:
    form = catalog.get(response.form_id, response.form_version)
    return form.question(qid) if form else None


def cell_value(catalog: FormCatalog, response: FormResponse, qid: str) -> Any:
    """The answer as the secretariat reads it: labels for choices, はい/いいえ, numbers as numbers."""
    if qid not in response.answers:
        return None
    value = response.answers[qid]
    question = _question(catalog, response, qid)
    if question is None or value is None:
        return value
    if question.type == "integer":
        return int(value)
    return format_answer(question, value)


def fixed_values(response: FormResponse) -> list[Any]:
    submitted, started = to_jst(response.submitted_at), to_jst(response.started_at)
    return [
        reference_number(response.id),
        STATUS_LABELS.get(response.status, response.status),
        submitted.strftime("%Y-%m-%d %H:%M") if submitted else None,
        started.strftime("%Y-%m-%d %H:%M") if started else None,
        response.form_version,
        response.channel,
    ]


def table(catalog: FormCatalog, form_id: str, responses: list[FormResponse]) -> tuple[list[str], list[list[Any]]]:
    columns = columns_for(catalog, form_id, responses)
    header = [*FIXED_COLUMNS, *(c.label for c in columns)]
    rows = [fixed_values(r) + [cell_value(catalog, r, c.question_id) for c in columns] for r in responses]
    return header, rows


def write_csv(header: list[str], rows: list[list[Any]]) -> bytes:
    return csv_bytes([header, *rows])


def write_xlsx(header: list[str], rows: list[list[Any]], title: str) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title[:31]
    append_row(sheet, header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        append_row(sheet, row)
    sheet.freeze_panes = "B2"
    for index, label in enumerate(header, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = min(40, max(10, len(label) * 2 + 2))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def response_document(catalog: FormCatalog, response: FormResponse) -> dict[str, Any]:
    """One response as JSON: raw values for systems, labels and display text for people."""
    columns = columns_for(catalog, response.form_id, [response])
    submitted, started = to_jst(response.submitted_at), to_jst(response.started_at)
    return {
        "id": response.id,
        "number": reference_number(response.id),
        "form_id": response.form_id,
        "form_version": response.form_version,
        "status": response.status,
        "channel": response.channel,
        "person_id": response.person_id,
        "started_at": started.isoformat() if started else None,
        "submitted_at": submitted.isoformat() if submitted else None,
        "answers": [
            {"id": c.question_id, "label": c.label, "value": response.answers[c.question_id],
             "display": cell_value(catalog, response, c.question_id)}
            for c in columns if c.question_id in response.answers
        ],
    }


def write_json(catalog: FormCatalog, responses: list[FormResponse]) -> bytes:
    documents = [response_document(catalog, r) for r in responses]
    return json.dumps(documents, ensure_ascii=False, indent=2).encode("utf-8")


def export(catalog: FormCatalog, form_id: str, responses: list[FormResponse], fmt: str) -> bytes:
    if fmt == "json":
        return write_json(catalog, responses)
    header, rows = table(catalog, form_id, responses)
    if fmt == "csv":
        return write_csv(header, rows)
    if fmt == "xlsx":
        return write_xlsx(header, rows, title=form_id)
    raise ValueError(f"unknown format {fmt}")


def default_filename(form_id: str, fmt: str, today: date) -> Path:
    return Path(f"hearing-{form_id}-{today:%Y%m%d}.{fmt}")
