"""`madoguchi programs list|check`: the programs of this installation and whether their files hold."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table
from bot.programs import ProgramCatalog, ProgramError, check_programs, describe, load_programs
from bot.settings import get_settings
from handlers.hearing.schema import FormDefinitionError, load_catalog
from knowledge.edition import fiscal_label, stated_fiscal_years

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
    warnings += edition_disagreements(catalog)
    for warning in warnings:
        console.print(f"[yellow]注意[/]: {warning}", highlight=False)
    for problem in errors:
        console.print(f"[red]誤り[/]: {problem}", highlight=False)
    if errors:
        raise typer.Exit(1)
    console.print(f"[green]OK[/]: {len(catalog)} programs（既定: {catalog.default.id}）")


def edition_disagreements(catalog: ProgramCatalog) -> list[str]:
    """A program whose fiscal_year is not the one its documents' edition metadata states: the bot answers and
    declines other years by the documents' edition, so the program file is likely out of date (or the metadata)."""
    found: list[str] = []
    for program in catalog:
        if program.fiscal_year is None:
            continue
        where = str(program.path) if program.path else f"program {program.id}"
        for document, year, meta in stated_fiscal_years(program.source_paths()):
            if year != program.fiscal_year:
                found.append(f"{where}: fiscal_year {program.fiscal_year}（{fiscal_label(program.fiscal_year)}）と"
                             f"資料「{document.name}」の版（{fiscal_label(year)}、{meta}）が違います。どちらかを直してください")
    return found
