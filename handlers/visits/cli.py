"""`madoguchi visits ...`: plan dispatches, list them, close the day, and the monthly report."""

from __future__ import annotations

import csv
import re
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from bot.commands import services_for_command as create
from bot.programs import catalog_for, program_in
from handlers.visits.rules import rules_for
from handlers.visits.service import VisitError, plan_visit
from handlers.escalation.staff import StaffError, command_scope
from handlers.visits.models import Visit
from handlers.visits.service import FLAG_LABELS
from bot.jst import JST
from handlers.visits.service import sweep_and_notify
from handlers.visits.report import build, to_csv, to_xlsx

visits_app = typer.Typer(help="専門家の訪問 / expert visits", no_args_is_help=True)
console = Console()
_TIME = re.compile(r"^\d{1,2}:\d{2}$")


def _services():  # type: ignore[no-untyped-def]

    return create()


def _fail(message: str) -> None:
    console.print(f"[red]{message}[/]", highlight=False)
    raise typer.Exit(2)


def _day(value: str) -> date:
    try:
        return datetime.strptime(value.replace("/", "-"), "%Y-%m-%d").date()
    except ValueError:
        _fail(f"日付は YYYY-MM-DD で指定してください: {value}")
        raise


def _plan(session, services, expert: int, company: int, day: date, start: str | None, end: str | None,  # type: ignore[no-untyped-def]
          institution: str | None, program_id: str | None = None) -> str:

    for value in (start, end):
        if value and not _TIME.match(value):
            raise VisitError("bad_time")
    catalog = catalog_for(services)
    program = catalog.get(program_id) if program_id else catalog.default
    if program is None:
        _fail(f"事業 {program_id} はありません（madoguchi programs list）")
    assert program is not None
    rules_file = program.rules_file() or services.settings.visits.rules_file
    planned = plan_visit(session, rules_for(day, rules_file), expert_id=expert, company_id=company, day=day,
                         start=start, end=end, institution=institution, program=program.id)
    line = f"V-{planned.visit.id}: {day} 専門家 {expert} → 企業 {company}（今年度 {planned.ordinal_in_year} 回目）"
    if planned.over_limit:
        line += " [yellow]⚠ 年度内の派遣回数の上限を超えます[/]"
    return line


ERRORS = {"not_an_expert": "専門家として登録された人ではありません", "no_such_company": "その企業は登録されていません",
          "bad_time": "時刻は HH:MM で指定してください"}


@visits_app.command("add")
def add(
    expert: int = typer.Option(..., help="専門家の登録者 ID"),
    company: int = typer.Option(..., help="企業 ID"),
    day: str = typer.Option(..., "--date", help="訪問予定日 YYYY-MM-DD"),
    start: str = typer.Option(None, help="開始予定 HH:MM"),
    end: str = typer.Option(None, help="終了予定 HH:MM"),
    institution: str = typer.Option(None, help="申請した支援機関"),
    program: str = typer.Option(None, "--program", help="事業の ID（既定: 既定の事業）"),
) -> None:
    """Register a planned dispatch; warns when the company would exceed the yearly limit."""
    services = _services()
    with services.db.session() as session:
        try:
            console.print(_plan(session, services, expert, company, _day(day), start, end, institution, program),
                          highlight=False)
        except VisitError as error:
            _fail(ERRORS.get(error.reason, error.reason))


def _staff_scope(services, session, staff: str | None) -> set[str] | None:  # type: ignore[no-untyped-def]

    try:
        return command_scope(session, staff, catalog_for(services))
    except StaffError as error:
        _fail(str(error))
        raise


@visits_app.command("import")
def import_visits(
    path: Path = typer.Argument(..., exists=True, dir_okay=False),
    program: str = typer.Option(None, "--program", help="program 列のない行の事業（既定: 既定の事業）"),
    staff: str = typer.Option(None, "--staff", help="取り込むスタッフ（担当外の事業の行は取り込まない）"),
) -> None:
    """CSV: expert_id,company_id,date,start,end,institution[,program]. Bad rows, and rows of a program the
    importing staff member (`--staff`) does not work for, are reported and skipped."""

    services = _services()
    catalog = catalog_for(services)
    errors = 0
    with services.db.session() as session, path.open(encoding="utf-8-sig", newline="") as handle:
        allowed = _staff_scope(services, session, staff)
        for line, row in enumerate(csv.DictReader(handle), start=2):
            program_id = (row.get("program") or "").strip() or program or catalog.default.id
            try:
                if catalog.get(program_id) is None:
                    raise ValueError(f"事業 {program_id} はありません（{', '.join(p.id for p in catalog)}）")
                if allowed is not None and program_id not in allowed:
                    raise ValueError(f"事業 {program_id} の訪問は {staff} の担当外のため取り込みません"
                                     f"（担当: {', '.join(sorted(allowed))}）")
                with session.begin_nested():
                    day = datetime.strptime(row["date"].strip().replace("/", "-"), "%Y-%m-%d").date()
                    console.print(_plan(session, services, int(row["expert_id"]), int(row["company_id"]), day,
                                        (row.get("start") or "").strip() or None,
                                        (row.get("end") or "").strip() or None,
                                        (row.get("institution") or "").strip() or None, program_id),
                                  highlight=False)
            except (VisitError, ValueError, KeyError) as error:
                errors += 1
                reason = ERRORS.get(getattr(error, "reason", ""), str(error))
                console.print(f"[yellow]スキップ[/] {path.name}:{line}: {reason}", highlight=False)
    if errors:
        raise typer.Exit(1)


@visits_app.command("list")
def list_visits(day: str = typer.Option(None, "--date"), status: str = typer.Option(None),
                program: str = typer.Option(None, "--program", help="この事業の訪問だけ（既定: すべての事業）")) -> None:
    """Visits with their program, status and flags."""
    services = _services()
    catalog = catalog_for(services)
    if program is not None and catalog.get(program) is None:
        _fail(f"事業 {program} はありません（{', '.join(p.id for p in catalog)}）")
    table = Table(title="訪問")
    for column in ("ID", "事業", "予定日", "専門家", "企業", "状態", "対面(分)", "要誓約書", "確認事項"):
        table.add_column(column)
    with services.db.session() as session:
        query = select(Visit).order_by(Visit.planned_date, Visit.id)
        if program is not None:
            query = query.where(program_in(Visit.program, {program}, catalog))
        if day:
            query = query.where(Visit.planned_date == _day(day))
        if status:
            query = query.where(Visit.status == status)
        for v in session.execute(query).scalars():
            table.add_row(f"V-{v.id}", catalog.owner_id(v.program), v.planned_date.isoformat(),
                          v.expert.display_name or "", v.company.name, v.status, str(v.face_to_face_minutes or ""),
                          "要" if v.needs_certificate else "", "、".join(FLAG_LABELS.get(f, f) for f in v.flags or []))
    console.print(table)


@visits_app.command("sweep")
def sweep(through: str = typer.Option(None, help="この日まで（既定: 昨日）")) -> None:
    """Close past days: visits missing a step need the paper certificate, and each expert is told."""
    services = _services()
    day = _day(through) if through else datetime.now(JST).date() - timedelta(days=1)
    with services.db.session() as session:
        marked = sweep_and_notify(session, day)
    console.print(f"{day} までの訪問のうち {len(marked)} 件を「要誓約書」にしました。", highlight=False)


@visits_app.command("report")
def report(
    month: str = typer.Option(..., help="YYYY-MM"),
    fmt: str = typer.Option("xlsx", "--format", help="csv | xlsx"),
    out: Path = typer.Option(None, "--out", help="出力ファイル（csv は省略時 標準出力）"),
    program: str = typer.Option(None, "--program", help="この事業の訪問だけ（既定: すべての事業）"),
    staff: str = typer.Option(None, "--staff", help="このスタッフの担当事業の訪問だけ（admin はすべて）"),
) -> None:
    """Monthly report: this month and fiscal-year cumulative, per expert, institution and company."""
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        _fail("--month は YYYY-MM で指定してください")
    if fmt not in ("csv", "xlsx"):
        _fail("--format は csv / xlsx のいずれかです")
    services = _services()
    catalog = catalog_for(services)
    with services.db.session() as session:
        programs = _staff_scope(services, session, staff)
        rules_file = services.settings.visits.rules_file
        if program is not None:
            chosen = catalog.get(program)
            if chosen is None:
                _fail(f"事業 {program} はありません（{', '.join(p.id for p in catalog)}）")
            assert chosen is not None
            if programs is not None and chosen.id not in programs:
                _fail(f"{staff} は事業 {chosen.id} の担当ではありません（担当: {', '.join(sorted(programs))}）")
            programs, rules_file = {chosen.id}, chosen.rules_file() or rules_file
        built = build(session, month, rules_file, catalog=catalog, programs=programs)
        data = to_csv(built) if fmt == "csv" else to_xlsx(built)
    if out is None and fmt == "xlsx":
        out = Path(f"visits-report-{month}.xlsx")
    if out is None:
        sys.stdout.buffer.write(data)
        return
    out.write_bytes(data)
    console.print(f"{month} の月次報告を {out} に出力しました（明細 {len(built.details)} 件）。", highlight=False)
