"""The `madoguchi` command: terminal chat, server, configuration, audit and database.

Capability-specific commands (knowledge, hearing, visits ...) live beside
their capability, which declares them (`Capability.cli`); they are listed
here in the order of `handlers/capabilities.py` (GROUPS) and imported only
when one is run or asked for its help (integrations/cli_lazy.py), so that
`madoguchi --help` and the light commands do not load every capability.
The modules a command needs are imported inside it for the same reason.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer
from rich.console import Console

from integrations.cli_lazy import LazyGroup, lazy_root

#: The command groups the CLI root does not define itself, in the order `madoguchi --help` lists them: the
#: programs, each capability's (handlers/capabilities.py's order; tests/test_cli_start.py checks that they are
#: what the capabilities declare), then the channels.
GROUPS = (
    LazyGroup("programs", "integrations.programs_cli:programs_app", "事業（プログラム） / programs"),
    LazyGroup("people", "capability:accounts", "登録者（専門家・企業担当者・支援機関）/ people"),
    LazyGroup("companies", "capability:accounts", "企業 / companies"),
    LazyGroup("staff", "capability:escalation", "事務局スタッフのアカウント / staff accounts"),
    LazyGroup("tickets", "capability:escalation", "お問い合わせチケット / tickets"),
    LazyGroup("tokens", "capability:escalation", "スタッフ API のトークン / staff API tokens"),
    LazyGroup("knowledge", "capability:faq", "知識ベース / knowledge base"),
    LazyGroup("hearing", "capability:hearing", "ヒアリングシート / hearing sheet"),
    LazyGroup("visits", "capability:visits", "専門家の訪問 / expert visits"),
    LazyGroup("channels", "integrations.channels.cli:channels_app", "チャネル / channels"),
)

app = typer.Typer(help="madoguchi (窓口): 中小企業支援事業のチャット窓口", no_args_is_help=True, cls=lazy_root(GROUPS))
config_app = typer.Typer(help="設定 / configuration")
audit_app = typer.Typer(help="監査ログ / audit trail")
db_app = typer.Typer(help="データベース / database")
logs_app = typer.Typer(help="ログ / logs (JSON, masked, rotated)", no_args_is_help=True)
backup_app = typer.Typer(help="バックアップ / backups", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")
app.add_typer(logs_app, name="logs")
app.add_typer(backup_app, name="backup")

console = Console()


def _services():  # type: ignore[no-untyped-def]
    from bot.commands import services_for_command

    return services_for_command()


@config_app.command("show")
def config_show(as_json: bool = typer.Option(False, "--json", help="JSON で出力")) -> None:
    """Print the effective settings, secrets masked."""
    from rich.table import Table

    from bot.settings import get_settings

    settings = get_settings()
    if as_json:
        console.print_json(json.dumps(settings.masked(), ensure_ascii=False, default=str))
        return
    table = Table(title="madoguchi settings (MADOGUCHI_<GROUP>__<FIELD>; --json for the groups)")
    table.add_column("environment variable", no_wrap=True)
    table.add_column("value", overflow="fold")
    for variable, value in settings.masked_rows():
        table.add_row(variable, "" if value is None else str(value))
    console.print(table)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (also done automatically at start)."""
    services = _services()
    console.print(f"[green]database is at the newest schema[/] ({services.settings.masked()['resolved_database_url']})")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit chain; exit 1 and name every broken event if it was tampered with."""
    from bot.storage.audit import verify_chain

    services = _services()
    with services.db.session() as session:
        report = verify_chain(session)
    if report.ok:
        console.print(f"[green]OK[/]: {report.checked} events, chain intact")
        return
    console.print(f"[red]BROKEN[/]: {len(report.broken)} of {report.checked} events do not hold")
    for event_id, reason in report.broken:
        console.print(f"  event id {event_id}: {reason}")
    raise typer.Exit(1)


@audit_app.command("search")
def audit_search(
    person: int = typer.Option(None, "--person", help="行為者の登録者 ID"),
    since: str = typer.Option(None, "--since", help="この日時以降（YYYY-MM-DD または ISO 形式、UTC）"),
    action: str = typer.Option(None, "--action", help="操作名（前方一致: visit. など）"),
    subject: str = typer.Option(None, "--subject", help="対象 種類:ID（例 ticket:12）"),
    limit: int = typer.Option(200, "--limit"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Who did what: search the tamper-evident audit trail."""
    from datetime import datetime

    from rich.table import Table
    from sqlalchemy import select

    from bot.jst import utc_iso
    from bot.storage.models import AuditEvent



    services = _services()
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if person is not None:
        query = query.where(AuditEvent.actor_person_id == person)
    if since:
        try:
            moment = datetime.fromisoformat(since)
        except ValueError:
            console.print("[red]--since は YYYY-MM-DD か ISO 形式で指定してください[/]")
            raise typer.Exit(2) from None
        query = query.where(AuditEvent.created_at >= moment.replace(tzinfo=None))
    if action:
        query = query.where(AuditEvent.action.startswith(action))
    if subject:
        kind, _, ident = subject.partition(":")
        query = query.where(AuditEvent.subject_type == kind, AuditEvent.subject_id == ident)
    with services.db.session() as session:
        rows = [{"id": e.id, "at": utc_iso(e.created_at), "actor_person_id": e.actor_person_id,
                 "action": e.action, "subject": f"{e.subject_type}:{e.subject_id}" if e.subject_type else None,
                 "data": e.data} for e in session.execute(query).scalars()]
    if as_json:
        console.print_json(json.dumps(rows, ensure_ascii=False))
        return
    table = Table(title="audit trail")
    for column in ("id", "at (UTC)", "actor", "action", "subject", "data"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row["id"]), row["at"][:19], str(row["actor_person_id"] or ""), row["action"],
                      row["subject"] or "", json.dumps(row["data"], ensure_ascii=False)[:60])
    console.print(table)


@backup_app.command("create")
def backup_create(dest: Path = typer.Option(None, "--dest", help="保存先（既定: MADOGUCHI_BACKUP__DIR）")) -> None:
    """Back up the database, index and published FAQs while the service keeps running."""
    from bot.backup import BackupError, create

    services = _services()
    try:
        info = create(services, dest)
    except BackupError as error:
        console.print(f"[red]{error}[/]", highlight=False)
        raise typer.Exit(2) from None
    console.print(f"[green]バックアップしました[/] {info.path}（{info.manifest['database']}、索引: "
                  f"{info.manifest['index']}）", highlight=False)


@backup_app.command("list")
def backup_list() -> None:
    from bot.backup import list_backups

    for info in list_backups(_services()):
        console.print(f"{info.path.name}  {info.manifest['database']}  {info.manifest['counts']}", highlight=False)


@backup_app.command("restore")
def backup_restore(
    source: Path = typer.Argument(..., help="バックアップのフォルダ（backup list の名前でも可）"),
    rebuild_index: bool = typer.Option(False, "--rebuild-index", help="索引を資料から作り直す"),
    yes: bool = typer.Option(False, "--yes", help="確認なしで実行"),
) -> None:
    """Replace the current data with a backup (stop the service first)."""
    from bot.backup import BackupError, backups_dir, restore

    services = _services()
    if not source.exists():
        source = backups_dir(services) / source.name
    if not yes and not typer.confirm(f"現在のデータを {source.name} で置き換えます。よろしいですか？"):
        raise typer.Exit(1)
    try:
        result = restore(services, source, rebuild_index=rebuild_index)
    except BackupError as error:
        console.print(f"[red]{error}[/]", highlight=False)
        raise typer.Exit(2) from None
    console.print(f"[green]復元しました[/] {result}", highlight=False)


@logs_app.command("purge")
def logs_purge(days: int = typer.Option(None, help="保持日数（既定: MADOGUCHI_LOG__RETENTION_DAYS、最低31日）")) -> None:
    """Delete rotated log files older than the retention. Database records are never touched."""
    from bot.logging_setup import purge_logs
    from bot.settings import get_settings

    settings = get_settings()
    keep = max(31, days or settings.log.retention_days)
    removed = purge_logs(settings.resolved_log_dir, keep)
    console.print(f"{len(removed)} 個のログファイルを削除しました（{keep}日より前）。", highlight=False)


@logs_app.command("search")
def logs_search(
    contains: str = typer.Option(None, help="この文字列を含む行"),
    request_id: str = typer.Option(None, "--request-id"),
    level: str = typer.Option(None, help="error / warning / info"),
    since: str = typer.Option(None, help="この日時以降（ISO 形式、UTC）"),
) -> None:
    """Search the JSON log files (current and rotated), oldest first."""
    from bot.logging_setup import LOG_FILE, rotated_files
    from bot.settings import get_settings

    log_dir = get_settings().resolved_log_dir
    files = [path for path, _ in rotated_files(log_dir)] + [log_dir / LOG_FILE]
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if contains and contains not in line:
                continue
            if request_id and event.get("request_id") != request_id:
                continue
            if level and event.get("level") != level.lower():
                continue
            if since and str(event.get("timestamp", "")) < since:
                continue
            console.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command()
def chat(
    user: str = typer.Option(None, help="Terminal user id (default: your login name)"),
    no_ingest: bool = typer.Option(False, "--no-ingest", help="Do not load the sample knowledge base"),
    program_id: str = typer.Option(None, "--program", help="この事業の窓口として話す（既定: 最初に選ぶ）"),
) -> None:
    """Talk to madoguchi in the terminal (channel `cli`)."""
    import getpass

    from rich.panel import Panel
    from rich.text import Text

    from bot.engine import Engine
    from bot.messages import InboundMessage, Option, Reply
    from bot.outbox import take_pending
    from bot.programs import catalog_for
    from bot.text import normalize

    services = _services()
    catalog = catalog_for(services)
    if program_id is not None and catalog.get(program_id) is None:
        console.print(f"[red]事業 {program_id} はありません[/]（あるもの: {', '.join(p.id for p in catalog)}）")
        raise typer.Exit(2)
    program: str | None = program_id
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
        with services.db.session() as session:
            waiting = take_pending(session, "cli", user_id)
        if waiting:
            show(waiting)

    pick_prefix = "\x00program:"
    #: A question the general window was not sure of: choosing a program then asks it there.
    unsure_question: str | None = None

    def offer_programs(again: bool = False) -> None:
        """Several programs and none chosen: like the web's general page, offer the choice first (numbered
        after the menu's buttons); a typed question is still answered, from every program's sources.
        `again`: after a question the general window was not sure of, choosing a program asks it there."""
        nonlocal numbered
        if program is not None or not catalog.several:
            return
        if again:
            console.print("[bold]事業を選ぶと、このご質問をその事業の資料でお調べします。[/]")
        else:
            console.print("[bold]どの事業についてのお問い合わせですか？[/]（番号で選ぶか、そのままご質問ください）")
        picks = [Option(label=p.name, value=pick_prefix + p.id) for p in catalog if "cli" in p.channels]
        for number, option in enumerate(picks, start=len(pending_options) + 1):
            console.print(f"  [bold cyan]{number}[/]. {option.label}")
        pending_options.extend(picks)
        numbered = True

    if program is not None:
        console.print(f"【{catalog.programs[program].name}】の窓口です。", highlight=False)
    show(engine.handle(InboundMessage(channel="cli", external_user_id=user_id, program=program, text="メニュー")))
    offer_programs()
    while True:
        show_pending()
        try:
            line = console.input("[bold]あなた> [/]")
        except (EOFError, KeyboardInterrupt):
            console.print("\nまたのご利用をお待ちしています。")
            return
        if line.strip().lower() in {"exit", "quit", ":q", "/exit", "/quit", "/q"}:
            console.print("またのご利用をお待ちしています。")
            return
        choice = None
        stripped = line.strip()
        number = normalize(stripped)  # 「３」 typed full-width is the number 3
        if numbered and number.isdigit() and pending_options:
            if not 1 <= int(number) <= len(pending_options):
                # A number while choices are offered is a choice: one that is not there is said so, not sent to
                # the knowledge base as a question (「3」 would be answered with the excerpt of a heading 「3. …」).
                console.print(f"その番号の選択肢はありません。1〜{len(pending_options)} の番号で選ぶか、ご質問を入力してください。")
                continue
            choice = pending_options[int(number) - 1].value
        elif not numbered:  # typing a button's label presses it
            choice = next((o.value for o in pending_options if o.label == stripped), None)
        if choice and choice.startswith(pick_prefix):
            program = choice.removeprefix(pick_prefix)
            console.print(f"【{catalog.programs[program].name}】の窓口です。", highlight=False)
            choice, line = None, unsure_question or "メニュー"
        message = InboundMessage(channel="cli", external_user_id=user_id, program=program,
                                 text=None if choice else line, choice=choice)
        replies = engine.handle(message)
        show(replies)
        unsure_question = None
        if choice is None and any(r.meta.get("outcome") in ("unsure", "which_program") for r in replies):
            unsure_question = line
            offer_programs(again=True)


def _ensure_knowledge(services) -> None:  # type: ignore[no-untyped-def]
    """On a fresh data dir, ingest the configured sources (the bundled sample KB by default)."""
    try:
        from knowledge.ingest import ingest_paths  # heavy: loads chromadb and the embedder
        from knowledge.service import knowledge_is_empty  # heavy: loads chromadb and the embedder
    except ImportError:  # knowledge package not installed: the plain fallback answers
        return
    if knowledge_is_empty(services.db):
        from knowledge.cli import default_targets  # heavy: loads chromadb and the embedder

        with console.status("サンプルの知識ベースを読み込んでいます…"):
            ingest_paths(services, default_targets(services))


@app.command()
def serve(
    host: str = typer.Option(None, help="Bind address (default from settings)"),
    port: int = typer.Option(None, help="Port (default from settings)"),
    workers: int = typer.Option(1, help="uvicorn worker processes"),
) -> None:
    """Start the web chat, the API and the channel webhooks (uvicorn)."""
    import uvicorn  # only to serve

    from bot.logging_setup import configure_logging
    from bot.settings import get_settings

    settings = get_settings()
    services = _services()
    _ensure_knowledge(services)
    from integrations.channels import live_channels  # per command: `madoguchi --help` loads no platform SDK

    console.print("live channels: " + ", ".join(live_channels(settings)))
    services.close()

    configure_logging(settings.log.level, settings.resolved_log_dir)
    # log_config=None: uvicorn's error and access logs go through our masked JSON handlers (each worker
    # configures them again when it builds the app).
    # timeout_graceful_shutdown: open live-update streams (server-sent events) would otherwise hold a stop.
    uvicorn.run("integrations.web:create_app", factory=True, host=host or settings.web.host,
                port=port or settings.web.port, workers=workers, log_level=settings.log.level.lower(), log_config=None,
                # A worker builds the app (models, index) before it answers the supervisor's health check; on a
                # busy machine that took longer than uvicorn's 5 s, and workers were killed in a restart loop.
                timeout_worker_healthcheck=120, timeout_graceful_shutdown=5)


logging.getLogger("chromadb").setLevel(logging.WARNING)
