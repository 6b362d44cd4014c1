"""`madoguchi hearing ...`: export responses for the secretariat, list them, check form files."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

hearing_app = typer.Typer(help="ヒアリングシート / hearing sheet", no_args_is_help=True)
console = Console()


def _services():  # type: ignore[no-untyped-def]
    from bot.commands import services_for_command as create

    return create()


def _parse_day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value.replace("/", "-"), "%Y-%m-%d").date()
    except ValueError:
        console.print(f"[red]日付は YYYY-MM-DD で指定してください: {value}[/]")
        raise typer.Exit(2) from None


@hearing_app.command("export")
def export_command(
    form: str = typer.Option(None, "--form", help="フォームID（既定: 設定 hearing_form）"),
    fmt: str = typer.Option("csv", "--format", help="csv | xlsx | json"),
    since: str = typer.Option(None, "--since", help="この日（日本時間）以降に送信された回答 YYYY-MM-DD"),
    status: str = typer.Option("submitted", "--status", help="submitted | in_progress | abandoned | all"),
    out: Path = typer.Option(None, "--out", help="出力ファイル（csv/json は省略時 標準出力）"),
) -> None:
    """One row per response, one column per question, labels in Japanese."""
    from handlers.hearing.export import default_filename, export, select_responses
    from handlers.hearing.schema import catalog

    if fmt not in ("csv", "xlsx", "json"):
        console.print("[red]--format は csv / xlsx / json のいずれかです[/]")
        raise typer.Exit(2)
    day = _parse_day(since)
    services = _services()
    form_id = form or services.settings.hearing_form
    if catalog(services).latest(form_id) is None:
        console.print(f"[red]フォーム {form_id} はありません（{', '.join(catalog(services).form_ids())}）[/]")
        raise typer.Exit(2)
    with services.db.session() as session:
        responses = select_responses(session, form_id, day, None if status == "all" else status)
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
) -> None:
    """Responses with their number, status and progress."""
    from handlers.hearing import reference_number
    from handlers.hearing.export import STATUS_LABELS, select_responses
    from bot.jst import to_jst

    services = _services()
    form_id = form or services.settings.hearing_form
    table = Table(title=f"ヒアリングシート {form_id}")
    for column in ("受付番号", "状態", "企業名", "回答数", "開始", "送信"):
        table.add_column(column)
    with services.db.session() as session:
        for response in select_responses(session, form_id, None, None if status == "all" else status):
            started, submitted = to_jst(response.started_at), to_jst(response.submitted_at)
            table.add_row(reference_number(response.id), STATUS_LABELS.get(response.status, response.status),
                          str(response.answers.get("company_name") or ""), str(len(response.answers)),
                          f"{started:%Y-%m-%d %H:%M}" if started else "",
                          f"{submitted:%Y-%m-%d %H:%M}" if submitted else "")
    console.print(table)


@hearing_app.command("check")
def check_command(paths: list[Path] = typer.Argument(..., help="確認するフォーム定義 YAML")) -> None:
    """Validate form files before deploying them; errors name the question and field."""
    from handlers.hearing.schema import FormDefinitionError, load_form

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
