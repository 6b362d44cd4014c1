"""`madoguchi programs list|check`: the programs of this installation and whether their files hold."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table
from bot.programs import ProgramError, load_programs
from bot.settings import get_settings
from bot.programs import describe
from handlers.hearing.schema import FormDefinitionError, load_catalog
from bot.programs import check_programs

programs_app = typer.Typer(help="事業（プログラム） / programs", no_args_is_help=True)
console = Console()


def _catalog():  # type: ignore[no-untyped-def]

    try:
        return load_programs(get_settings())
    except ProgramError as error:
        console.print(f"[red]プログラム定義の誤り[/]: {error}", highlight=False)
        raise typer.Exit(2) from None


@programs_app.command("list")
def list_programs(as_json: bool = typer.Option(False, "--json", help="JSON で出力")) -> None:
    """Every program: id, name, default, fiscal year, knowledge sources, hearing form, channels."""
    catalog = _catalog()
    rows = [describe(p) for p in catalog]
    if as_json:
        console.print_json(json.dumps(rows, ensure_ascii=False))
        return
    table = Table(title="programs")
    for column in ("id", "name", "default", "FY", "sources", "hearing form", "channels"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["id"], row["name"], "✓" if row["default"] else "", str(row["fiscal_year"] or ""),
                      "\n".join(row["sources"]) or "(shared only)", row["hearing_form"] or "-",
                      ", ".join(row["channels"]))
    console.print(table)


@programs_app.command("check")
def check() -> None:
    """Validate every program file and what it refers to (forms, rules, sources, credentials); exit 1 on errors."""
    catalog = _catalog()
    try:
        forms = load_catalog(get_settings().hearing.forms_dirs).form_ids()
    except FormDefinitionError as error:
        console.print(f"[red]フォーム定義の誤り[/]: {error}", highlight=False)
        raise typer.Exit(1) from None
    errors, warnings = check_programs(catalog, forms)
    for warning in warnings:
        console.print(f"[yellow]注意[/]: {warning}", highlight=False)
    for problem in errors:
        console.print(f"[red]誤り[/]: {problem}", highlight=False)
    if errors:
        raise typer.Exit(1)
    console.print(f"[green]OK[/]: {len(catalog)} programs（既定: {catalog.default.id}）")
