"""The `madoguchi` command: terminal chat, server, configuration, audit and database.

Capability-specific commands (knowledge, hearing, visits ...) live beside
their capability and are attached here as typer sub-apps.
"""

from __future__ import annotations

import getpass
import json
import logging

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bot.settings import get_settings

app = typer.Typer(help="madoguchi (窓口): 中小企業支援事業のチャット窓口", no_args_is_help=True)
config_app = typer.Typer(help="設定 / configuration")
audit_app = typer.Typer(help="監査ログ / audit trail")
db_app = typer.Typer(help="データベース / database")
app.add_typer(config_app, name="config")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")

console = Console()


def _services():  # type: ignore[no-untyped-def]
    from bot.logging_setup import configure_logging
    from bot.services import Services

    from bot.forms.schema import FormDefinitionError

    settings = get_settings()
    configure_logging(settings.log_level)
    services = Services.create(settings)
    try:
        services.forms  # noqa: B018  (validate form definitions at startup, not mid-chat)
    except FormDefinitionError as error:
        console.print(f"[red]フォーム定義の誤り[/]: {error}", highlight=False)
        raise typer.Exit(2) from None
    return services


@config_app.command("show")
def config_show(as_json: bool = typer.Option(False, "--json", help="JSON で出力")) -> None:
    """Print the effective settings, secrets masked."""
    values = get_settings().masked()
    if as_json:
        console.print_json(json.dumps(values, ensure_ascii=False, default=str))
        return
    table = Table(title="madoguchi settings")
    table.add_column("setting")
    table.add_column("value")
    for key, value in values.items():
        table.add_row(key, "" if value is None else str(value))
    console.print(table)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (also done automatically at start)."""
    services = _services()
    console.print(f"[green]database is at the newest schema[/] ({services.settings.masked()['resolved_database_url']})")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit chain; exit 1 and name the first broken event if it was tampered with."""
    from bot.storage.audit import verify_chain

    services = _services()
    with services.db.session() as session:
        report = verify_chain(session)
    if report.ok:
        console.print(f"[green]OK[/]: {report.checked} events, chain intact")
        return
    console.print(f"[red]BROKEN[/] at event id {report.first_broken_id}: {report.reason} "
                  f"({report.checked} events verified before it)")
    raise typer.Exit(1)


@app.command()
def chat(
    user: str = typer.Option(None, help="Terminal user id (default: your login name)"),
    no_ingest: bool = typer.Option(False, "--no-ingest", help="Do not load the sample knowledge base"),
) -> None:
    """Talk to madoguchi in the terminal (channel `cli`)."""
    from bot.engine import Engine
    from bot.messages import InboundMessage, Reply

    services = _services()
    if not no_ingest:
        _ensure_knowledge(services)
    engine = Engine(services)
    user_id = user or getpass.getuser()
    console.print(Panel.fit("madoguchi（窓口）ターミナルチャット\n"
                            "番号で選択肢を選べます。終了は「exit」または Ctrl-D。", style="cyan"))
    pending_options: list = []
    numbered = True  # False while the bot expects a typed answer (a number is then the answer)

    def show(replies: list[Reply]) -> None:
        nonlocal pending_options, numbered
        pending_options = []
        numbered = not any(reply.free_input for reply in replies)
        for reply in replies:
            console.print(Panel(Text(reply.text), title="窓口", title_align="left", border_style="green"))
            for link in reply.links:
                console.print(f"  🔗 {link.label}: {link.url}")
            for number, option in enumerate(reply.options, start=len(pending_options) + 1):
                marker = f"[bold cyan]{number}[/]." if numbered else "・"
                console.print(f"  {marker} {option.label}")
            pending_options.extend(reply.options)

    def show_pending() -> None:
        """Messages for this user that were not replies (a visit to confirm, a staff answer)."""
        from bot.outbox import mark_sent, pending_for_user, replies_of

        with services.db.session() as session:
            rows = pending_for_user(session, "cli", user_id)
            waiting = [reply for row in rows for reply in replies_of(row)]
            for row in rows:
                mark_sent(row)
        if waiting:
            show(waiting)

    show(engine.handle(InboundMessage(channel="cli", external_user_id=user_id, text="メニュー")))
    while True:
        show_pending()
        try:
            line = console.input("[bold]あなた> [/]")
        except (EOFError, KeyboardInterrupt):
            console.print("\nまたのご利用をお待ちしています。")
            return
        if line.strip().lower() in {"exit", "quit", ":q"}:
            console.print("またのご利用をお待ちしています。")
            return
        choice = None
        stripped = line.strip()
        if numbered and stripped.isdigit() and pending_options and 1 <= int(stripped) <= len(pending_options):
            choice = pending_options[int(stripped) - 1].value
        elif not numbered:  # typing a button's label presses it
            choice = next((o.value for o in pending_options if o.label == stripped), None)
        message = InboundMessage(channel="cli", external_user_id=user_id,
                                 text=None if choice else line, choice=choice)
        show(engine.handle(message))


def _ensure_knowledge(services) -> None:  # type: ignore[no-untyped-def]
    """On a fresh data dir, ingest the configured sources (the bundled sample KB by default)."""
    try:
        from knowledge.ingest import ingest_paths
        from knowledge.service import knowledge_is_empty
    except ImportError:  # knowledge package not installed: the plain fallback answers
        return
    if knowledge_is_empty(services.db):
        with console.status("サンプルの知識ベースを読み込んでいます…"):
            ingest_paths(services, services.settings.default_knowledge_paths)


@app.command()
def serve(
    host: str = typer.Option(None, help="Bind address (default from settings)"),
    port: int = typer.Option(None, help="Port (default from settings)"),
    workers: int = typer.Option(1, help="uvicorn worker processes"),
) -> None:
    """Start the web chat, the API and the channel webhooks (uvicorn)."""
    import uvicorn

    settings = get_settings()
    services = _services()
    _ensure_knowledge(services)
    from integrations.channels import live_channels

    console.print("live channels: " + ", ".join(live_channels(settings)))
    services.close()
    uvicorn.run("integrations.web:create_app", factory=True, host=host or settings.host,
                port=port or settings.port, workers=workers, log_level=settings.log_level.lower())


def _attach_capability_commands() -> None:
    from bot.forms.cli import hearing_app
    from bot.people.cli import companies_app, people_app
    from bot.visits.cli import visits_app
    from bot.staff_cli import staff_app, tickets_app
    from integrations.cli import channels_app

    app.add_typer(hearing_app, name="hearing")
    app.add_typer(people_app, name="people")
    app.add_typer(companies_app, name="companies")
    app.add_typer(visits_app, name="visits")
    app.add_typer(channels_app, name="channels")
    app.add_typer(staff_app, name="staff")
    app.add_typer(tickets_app, name="tickets")
    try:
        from knowledge.cli import knowledge_app
    except ImportError:
        return
    app.add_typer(knowledge_app, name="knowledge")


_attach_capability_commands()
logging.getLogger("chromadb").setLevel(logging.WARNING)
