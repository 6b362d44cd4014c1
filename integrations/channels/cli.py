"""`madoguchi channels ...`: run Slack (Socket Mode) or Telegram (polling) without a public URL, and
see what the outbox holds."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import case, func, select
from bot.commands import services_for_command as _services
from bot.engine import Engine
from bot.storage.models import OutboundMessage
from bot.programs import ProgramError, load_programs
from bot.settings import get_settings
from integrations.channels.delivery import ChannelRuntime

channels_app = typer.Typer(help="チャネル / channels", no_args_is_help=True)
console = Console()


def _runtime():  # type: ignore[no-untyped-def]
    from integrations.channels import build_worker  # per command: `madoguchi --help` loads no platform SDK

    services = _services()
    worker = build_worker(services)
    worker.start()
    return services, ChannelRuntime(Engine(services), worker)


@channels_app.command("status")
def status() -> None:
    """Live channels and the outbox per channel (pending, failing, sent)."""
    from integrations.channels import live_channels  # per command: `madoguchi --help` loads no platform SDK

    services = _services()
    console.print("live channels: " + ", ".join(live_channels(services.settings)))
    table = Table(title="outbox")
    for column in ("channel", "status", "messages", "retried"):
        table.add_column(column)
    with services.db.session() as session:
        retried = func.sum(case((OutboundMessage.attempts > 1, 1), else_=0))
        rows = session.execute(select(OutboundMessage.channel, OutboundMessage.status, func.count(), retried)
                               .group_by(OutboundMessage.channel, OutboundMessage.status)).all()
    for channel, state, count, retried in rows:
        table.add_row(channel, state, str(count), str(retried or 0))
    console.print(table)


@channels_app.command("slack-socket")
def slack_socket() -> None:
    """Slack over Socket Mode (needs MADOGUCHI_SLACK__APP_TOKEN, xapp-...): no public URL required."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler  # heavy: only for Socket Mode

    from integrations.channels import slack  # per command: `madoguchi --help` loads no platform SDK

    services, runtime = _runtime()
    settings = services.settings
    if not slack.is_configured(settings) or settings.slack.app_token is None:
        console.print("[red]MADOGUCHI_SLACK__BOT_TOKEN, MADOGUCHI_SLACK__SIGNING_SECRET, MADOGUCHI_SLACK__APP_TOKEN を設定してください[/]")
        raise typer.Exit(2)
    from integrations.slack_staff import staff_hooks  # per command: `madoguchi --help` loads no platform SDK

    app = slack.build_app(settings, runtime, staff_hooks(services))
    console.print("Slack Socket Mode で接続します（Ctrl-C で終了）")
    SocketModeHandler(app, settings.slack.app_token.get_secret_value()).start()


@channels_app.command("telegram-polling")
def telegram_polling() -> None:
    """Telegram by long polling (removes a registered webhook) of the general bot and every program's own bot:
    for local use."""
    from integrations.channels import telegram  # per command: `madoguchi --help` loads no platform SDK

    services, runtime = _runtime()
    bots = telegram.polling_bots(services.settings)
    if not bots:
        console.print("[red]MADOGUCHI_TELEGRAM__BOT_TOKEN（または事業の telegram.bot_token_env）を設定してください[/]")
        raise typer.Exit(2)
    names = ", ".join(program or "全般" for program in bots)
    console.print(f"Telegram をポーリングで受信します（{names}。Ctrl-C で終了）", highlight=False)
    telegram.run_polling(services, runtime)


@channels_app.command("line-richmenu")
def line_richmenu(program_id: str = typer.Option(..., "--program", help="プログラム ID（madoguchi programs list）")) -> None:
    """Create or update the program's LINE rich menu (image drawn from the labels with a Japanese font)."""
    from integrations.channels.line_richmenu import RichMenuError, publish  # per command: `madoguchi --help` loads no platform SDK


    settings = get_settings()
    try:
        catalog = load_programs(settings)
    except ProgramError as error:
        console.print(f"[red]プログラム定義の誤り[/]: {error}", highlight=False)
        raise typer.Exit(2) from None
    program = catalog.get(program_id)
    if program is None:
        console.print(f"[red]プログラム {program_id} はありません[/]（あるもの: {', '.join(p.id for p in catalog)}）")
        raise typer.Exit(2)
    try:
        result = publish(catalog, program, api_url=settings.line.api_url, data_api_url=settings.line.data_api_url,
                         font_path=settings.line.rich_menu_font)
    except RichMenuError as error:
        console.print(f"[red]リッチメニューを作成できません[/]: {error}", highlight=False)
        raise typer.Exit(2) from None
    console.print(f"[green]リッチメニューを設定しました[/]: {result.rich_menu_id}（画像 {result.image_bytes:,} バイト、"
                  f"置き換えたメニュー {len(result.replaced)} 件）")
