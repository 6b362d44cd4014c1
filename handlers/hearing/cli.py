"""`madoguchi hearing ...`: export responses for the secretariat, list them, check form files."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from bot.commands import services_for_command as create
from bot.programs import catalog_for
from handlers.escalation.staff import StaffError, command_scope
from handlers.hearing.export import default_filename, export, select_responses
from handlers.hearing.schema import catalog
from handlers.hearing import reference_number
from handlers.hearing.export import STATUS_LABELS
from bot.jst import to_jst
from handlers.hearing.schema import FormDefinitionError, load_form

hearing_app = typer.Typer(help="ヒアリングシート / hearing sheet", no_args_is_help=True)
console = Console()


def _services():  # type: ignore[no-untyped-def]

    return create()


def _parse_day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value.replace("/", "-"), "%Y-%m-%d").date()
    except ValueError:
        console.print(f"[red]日付は YYYY-MM-DD で指定してください: {value}[/]")
        raise typer.Exit(2) from None


def _scope(services, session, program_id: str | None, staff: str | None, form: str | None):  # type: ignore[no-untyped-def]
    """(form id, programs) of an export or list: `--program` narrows to one program and its form, `--staff`
    to the programs of that account (admins: all); a program the account does not work for is refused."""

    programs = catalog_for(services)
    try:
        allowed = command_scope(session, staff, programs)
    except StaffError as error:
        console.print(f"[red]{error}[/]", highlight=False)
        raise typer.Exit(2) from None
    if program_id is None:
        return form or programs.default.hearing_form or services.settings.hearing.form, allowed
    program = programs.get(program_id)
    if program is None:
        console.print(f"[red]事業 {program_id} はありません（{', '.join(p.id for p in programs)}）[/]")
        raise typer.Exit(2)
    if allowed is not None and program.id not in allowed:
        console.print(f"[red]{staff} は事業 {program.id} の担当ではありません（担当: {', '.join(sorted(allowed))}）[/]",
                      highlight=False)
        raise typer.Exit(2)
    if not (form or program.hearing_form):
        console.print(f"[red]事業 {program.id} にはヒアリングシートがありません[/]")
        raise typer.Exit(2)
    return form or program.hearing_form, {program.id}


@hearing_app.command("export")
def export_command(
    form: str = typer.Option(None, "--form", help="フォームID（既定: 事業のヒアリングシート）"),
    fmt: str = typer.Option("csv", "--format", help="csv | xlsx | json"),
    since: str = typer.Option(None, "--since", help="この日（日本時間）以降に送信された回答 YYYY-MM-DD"),
    status: str = typer.Option("submitted", "--status", help="submitted | in_progress | abandoned | all"),
    out: Path = typer.Option(None, "--out", help="出力ファイル（csv/json は省略時 標準出力）"),
    program: str = typer.Option(None, "--program", help="この事業の回答だけ（既定: すべての事業）"),
    staff: str = typer.Option(None, "--staff", help="このスタッフの担当事業の回答だけ（admin はすべて）"),
) -> None:
    """One row per response, one column per question, labels in Japanese."""
    if fmt not in ("csv", "xlsx", "json"):
        console.print("[red]--format は csv / xlsx / json のいずれかです[/]")
        raise typer.Exit(2)
    day = _parse_day(since)
    services = _services()
    with services.db.session() as session:
        form_id, programs = _scope(services, session, program, staff, form)
        if catalog(services).latest(form_id) is None:
            console.print(f"[red]フォーム {form_id} はありません（{', '.join(catalog(services).form_ids())}）[/]")
            raise typer.Exit(2)
        responses = select_responses(session, form_id, day, None if status == "all" else status,
                                     catalog=catalog_for(services), programs=programs)
        data = export(catalog(services), form_id, responses, fmt)
    if out is None and fmt == "xlsx":
        out = default_filename(form_id, fmt, date.today())
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    out.write_bytes(data)
    console.print(f"[green]{len(responses)}件[/]を {out} に出力しました。", highlight=False)


@hearing_app.command("list")
def list_command(
    form: str = typer.Option(None, "--form"),
    status: str = typer.Option("all", "--status", help="submitted | in_progress | abandoned | all"),
    program: str = typer.Option(None, "--program", help="この事業の回答だけ"),
    staff: str = typer.Option(None, "--staff", help="このスタッフの担当事業の回答だけ"),
) -> None:
    """Responses with their number, status and progress."""
    services = _services()
    with services.db.session() as session:
        form_id, programs = _scope(services, session, program, staff, form)
        table = Table(title=f"ヒアリングシート {form_id}")
        for column in ("受付番号", "状態", "企業名", "回答数", "開始", "送信"):
            table.add_column(column)
        for response in select_responses(session, form_id, None, None if status == "all" else status,
                                         catalog=catalog_for(services), programs=programs):
            started, submitted = to_jst(response.started_at), to_jst(response.submitted_at)
            table.add_row(reference_number(response.id), STATUS_LABELS.get(response.status, response.status),
                          str(response.answers.get("company_name") or ""), str(len(response.answers)),
                          f"{started:%Y-%m-%d %H:%M}" if started else "",
                          f"{submitted:%Y-%m-%d %H:%M}" if submitted else "")
    console.print(table)


@hearing_app.command("check")
def check_command(paths: list[Path] = typer.Argument(..., help="確認するフォーム定義 YAML")) -> None:
    """Validate form files before deploying them; errors name the question and field."""
    failed = False
    for path in paths:
        try:
            form = load_form(path)
        except FormDefinitionError as error:
            console.print(f"[red]NG[/] {error}", highlight=False)
            failed = True
            continue
        console.print(f"[green]OK[/] {path}: {form.id} 版{form.version}（{len(form.questions)}問）", highlight=False)
    if failed:
        raise typer.Exit(1)
