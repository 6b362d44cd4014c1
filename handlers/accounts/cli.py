"""`madoguchi people ...` and `madoguchi companies ...`: staff register who takes part and issue link codes."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from bot.commands import services_for_command as create
from datetime import date
from handlers.visits.rules import rules_for
from handlers.accounts import link_codes
from handlers.accounts.registry import RegistryError, add_person
from handlers.accounts.registry import import_people as run
from bot.storage.models import Person
from bot.storage.models import ChannelIdentity
import json
from handlers.accounts.data_requests import export
from bot.storage import audit
from handlers.accounts.data_requests import forget

people_app = typer.Typer(help="登録者（専門家・企業担当者・支援機関）/ people", no_args_is_help=True)
companies_app = typer.Typer(help="企業 / companies", no_args_is_help=True)
console = Console()


def _services():  # type: ignore[no-untyped-def]

    return create()


def _link_code_hours(services) -> int:  # type: ignore[no-untyped-def]


    return rules_for(date.today(), services.settings.visits.rules_file).link_code_hours


def _fail(message: str) -> None:
    console.print(f"[red]{message}[/]", highlight=False)
    raise typer.Exit(2)


@people_app.command("add")
def add(
    role: str = typer.Option(..., help="expert | applicant | institution | staff | admin"),
    name: str = typer.Option(..., help="氏名"),
    organisation: str = typer.Option(None, help="所属"),
    company_id: int = typer.Option(None, help="企業担当者の場合の企業 ID"),
    code: bool = typer.Option(True, "--code/--no-code", help="連携コードを発行する"),
) -> None:
    """Register a person (and print a one-time link code to hand to them)."""
    services = _services()
    with services.db.session() as session:
        try:
            person = add_person(session, role, name, organisation=organisation, company_id=company_id)
        except RegistryError as error:
            _fail(str(error))
        line = f"[green]登録しました[/] ID {person.id}: {person.display_name}（{role}）"
        if code:
            hours = _link_code_hours(services)
            issued = link_codes.issue(session, "link", hours=hours, person_id=person.id)
            line += f"\n連携コード: [bold]{issued}[/]（{hours}時間有効、1回限り）"
    console.print(line, highlight=False)


@people_app.command("import")
def import_people(path: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """CSV: role,name,organisation,company_corporate_number|company_id. Bad rows are reported and skipped."""
    services = _services()
    with services.db.session() as session:
        result = run(session, path)
    _report_import(result)


@people_app.command("link-code")
def link_code(person_id: int = typer.Argument(...), hours: int = typer.Option(None, help="有効時間")) -> None:
    """Issue a new one-time link code for a registered person."""
    services = _services()
    with services.db.session() as session:
        person = session.get(Person, person_id)
        if person is None:
            _fail(f"ID {person_id} の登録者はいません")
        valid = hours or _link_code_hours(services)
        issued = link_codes.issue(session, "link", hours=valid, person_id=person_id)

        audit.record(session, "link_code.issued", subject_type="person", subject_id=person_id)
    console.print(f"{person.display_name} の連携コード: [bold]{issued}[/]（{valid}時間有効、1回限り）", highlight=False)


@people_app.command("list")
def list_people(role: str = typer.Option(None)) -> None:
    """Registered people with their linked channels."""
    services = _services()
    table = Table(title="登録者")
    for column in ("ID", "役割", "氏名", "所属", "企業ID", "連携済みチャネル"):
        table.add_column(column)
    with services.db.session() as session:
        query = select(Person).order_by(Person.id)
        if role:
            query = query.where(Person.role == role)
        for person in session.execute(query).scalars():
            channels = session.execute(select(ChannelIdentity.channel).where(
                ChannelIdentity.person_id == person.id, ChannelIdentity.verified.is_(True))).scalars()
            table.add_row(str(person.id), person.role, person.display_name or "", person.organisation or "",
                          str(person.company_id or ""), ", ".join(channels))
    console.print(table)


@companies_app.command("add")
def add_company(
    name: str = typer.Option(..., help="企業名"),
    corporate_number: str = typer.Option(None, help="法人番号（13桁）"),
    address: str = typer.Option(None, help="所在地"),
    lat: float = typer.Option(None, help="所在地の緯度（チェックイン場所の照合用）"),
    lon: float = typer.Option(None, help="所在地の経度"),
) -> None:
    """Register a company (coordinates let check-ins be compared with its address)."""
    from handlers.accounts.registry import add_company as run  # keeps a local name apart from the module's

    services = _services()
    with services.db.session() as session:
        try:
            company = run(session, name, corporate_number=corporate_number, address=address, latitude=lat,
                          longitude=lon)
        except RegistryError as error:
            _fail(str(error))
        console.print(f"[green]登録しました[/] 企業 ID {company.id}: {company.name}", highlight=False)


@companies_app.command("import")
def import_companies(path: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """CSV: name,corporate_number,address,latitude,longitude,industry."""
    from handlers.accounts.registry import import_companies as run  # keeps a local name apart from the module's

    services = _services()
    with services.db.session() as session:
        result = run(session, path)
    _report_import(result)


def _report_import(result) -> None:  # type: ignore[no-untyped-def]
    console.print(f"[green]{result.created}件[/]を登録しました。", highlight=False)
    for error in result.errors:
        console.print(f"[yellow]スキップ[/] {error}", highlight=False)
    if result.errors:
        raise typer.Exit(1)


@people_app.command("export")
def export_person(person_id: int = typer.Argument(...), out: Path = typer.Option(None, "--out")) -> None:
    """Everything held about one person, as JSON (a data access request)."""


    services = _services()
    with services.db.session() as session:
        try:
            document = export(session, person_id)
        except LookupError:
            _fail(f"ID {person_id} の登録者はいません")
        audit.record(session, "person.exported", subject_type="person", subject_id=person_id)
    text = json.dumps(document, ensure_ascii=False, indent=2, default=str)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"{out} に出力しました。", highlight=False)


@people_app.command("forget")
def forget_person(person_id: int = typer.Argument(...),
                  yes: bool = typer.Option(False, "--yes", help="確認なしで実行")) -> None:
    """Erase a person's personal data (business records such as visits stay; the audit chain stays valid)."""
    if not yes and not typer.confirm(f"ID {person_id} の個人データを削除します。元に戻せません。よろしいですか？"):
        raise typer.Exit(1)
    services = _services()
    with services.db.session() as session:
        try:
            counts = forget(session, person_id, actor="cli")
        except LookupError:
            _fail(f"ID {person_id} の登録者はいません")
    console.print("削除しました: " + ", ".join(f"{k} {v}" for k, v in counts.items()), highlight=False)
