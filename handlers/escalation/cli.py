"""`madoguchi staff ...` (console accounts) and `madoguchi tickets ...` (the queue, for operators)."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from bot.commands import services_for_command as create
from handlers.escalation.models import StaffAccount
from bot.programs import catalog_for
from handlers.escalation.staff import StaffError, set_password
from handlers.escalation.staff import disable as disable_account
from bot.jst import utc_iso
from handlers.escalation.models import Ticket
from handlers.escalation.tickets import number
from bot.security import api_tokens
from bot.security.models import ApiToken

staff_app = typer.Typer(help="事務局スタッフのアカウント / staff accounts", no_args_is_help=True)
tickets_app = typer.Typer(help="お問い合わせチケット / tickets", no_args_is_help=True)
console = Console()


def _services():  # type: ignore[no-untyped-def]

    return create()


def _account(session, username: str):  # type: ignore[no-untyped-def]

    account = session.execute(select(StaffAccount).where(StaffAccount.username == username.lower())).scalar_one_or_none()
    if account is None:
        console.print(f"[red]{username} はいません[/]")
        raise typer.Exit(2)
    return account


def _password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("パスワード", hide_input=True, confirmation_prompt=True)


@staff_app.command("add")
def add(
    username: str = typer.Option(...),
    name: str = typer.Option(..., help="表示名"),
    role: str = typer.Option("staff", help="staff | admin"),
    slack_user: str = typer.Option(None, help="Slack のユーザー ID（U...）"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="パスワードを標準入力から読む"),
    program: list[str] = typer.Option(None, "--program", help="担当する事業の ID（複数可、既定: 既定の事業。admin は全事業）"),
) -> None:
    """Create a console account (password hashed with argon2) working for one or more programs."""
    from handlers.escalation.staff import StaffError, create  # keeps a local name apart from the module's

    password = _password(password_stdin)
    services = _services()
    unknown = [p for p in program or [] if catalog_for(services).get(p) is None]
    if unknown:
        console.print(f"[red]事業 {', '.join(unknown)} はありません[/]（madoguchi programs list）", highlight=False)
        raise typer.Exit(2)
    with services.db.session() as session:
        try:
            account = create(session, username, name, password, role=role, slack_user_id=slack_user)
        except StaffError as error:
            console.print(f"[red]{error}[/]", highlight=False)
            raise typer.Exit(2) from None
        account.programs = list(program or []) or None
        console.print(f"[green]作成しました[/] {account.username}（{account.role}、"
                      f"{', '.join(program or []) or '既定の事業'}）", highlight=False)


@staff_app.command("passwd")
def passwd(username: str = typer.Argument(...),
           password_stdin: bool = typer.Option(False, "--password-stdin")) -> None:
    """Set a new password."""
    password = _password(password_stdin)
    services = _services()
    with services.db.session() as session:
        account = _account(session, username)
        try:
            set_password(session, account, password)
        except StaffError as error:
            console.print(f"[red]{error}[/]", highlight=False)
            raise typer.Exit(2) from None
    console.print("変更しました。")


@staff_app.command("disable")
def disable(username: str = typer.Argument(...)) -> None:
    """Block a staff account from the console (its history stays)."""
    services = _services()
    with services.db.session() as session:
        disable_account(session, _account(session, username))
    console.print("無効にしました。")


@tickets_app.command("list")
def list_tickets(
    status: str = typer.Option(None, help="open | claimed | answered | resolved | closed"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The queue, newest first."""
    services = _services()
    with services.db.session() as session:
        query = select(Ticket).order_by(Ticket.id.desc())
        if status:
            query = query.where(Ticket.status == status)
        rows = [{"number": number(t.id), "id": t.id, "status": t.status, "reason": t.reason, "channel": t.channel,
                 "question": t.question, "assignee": t.assignee.display_name if t.assignee else None,
                 "overdue": t.overdue, "created_at": utc_iso(t.created_at),
                 "first_response_at": utc_iso(t.first_response_at), "resolved_at": utc_iso(t.resolved_at),
                 "satisfaction": t.satisfaction} for t in session.execute(query).scalars()]
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    table = Table(title="お問い合わせ")
    for column in ("番号", "状態", "担当", "期限超過", "質問"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["number"], row["status"], row["assignee"] or "", "⚠" if row["overdue"] else "",
                      (row["question"] or "")[:40])
    console.print(table)


api_tokens_app = typer.Typer(help="スタッフ API のトークン / staff API tokens", no_args_is_help=True)


@api_tokens_app.command("create")
def token_create(name: str = typer.Option(...), scope: list[str] = typer.Option(..., help="hearings:read | visits:read | *"),
                 program: list[str] = typer.Option(None, "--program",
                                                   help="読める事業の ID（複数可、* で全事業、既定: 既定の事業）")) -> None:
    """Create a token; it is shown once and stored only as a hash."""
    services = _services()
    unknown = [p for p in program or [] if p != "*" and catalog_for(services).get(p) is None]
    if unknown:
        console.print(f"[red]事業 {', '.join(unknown)} はありません[/]（madoguchi programs list）", highlight=False)
        raise typer.Exit(2)
    with services.db.session() as session:
        try:
            row, token = api_tokens.create(session, name, scope, programs=list(program or []) or None)
        except api_tokens.TokenError as error:
            console.print(f"[red]{error}[/]", highlight=False)
            raise typer.Exit(2) from None
        console.print(f"トークン ID {row.id}（{', '.join(row.scopes)}）:\n[bold]{token}[/]\nこの値は再表示できません。",
                      highlight=False)


@api_tokens_app.command("list")
def token_list() -> None:
    services = _services()
    table = Table(title="API トークン")
    for column in ("ID", "名前", "スコープ", "作成", "最終利用", "失効"):
        table.add_column(column)
    with services.db.session() as session:
        for row in session.execute(select(ApiToken).order_by(ApiToken.id)).scalars():
            table.add_row(str(row.id), row.name, ", ".join(row.scopes), f"{row.created_at:%Y-%m-%d}",
                          f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "",
                          f"{row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "")
    console.print(table)


@api_tokens_app.command("revoke")
def token_revoke(token_id: int = typer.Argument(...)) -> None:
    services = _services()
    with services.db.session() as session:
        try:
            api_tokens.revoke(session, token_id)
        except api_tokens.TokenError as error:
            console.print(f"[red]{error}[/]", highlight=False)
            raise typer.Exit(2) from None
    console.print(f"トークン {token_id} を失効させました。")
