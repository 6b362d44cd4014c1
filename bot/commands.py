"""What every `madoguchi` command group shares: opening the services for one command.

Capability CLIs (`handlers/<capability>/cli.py`), `knowledge/cli.py` and the CLI
root (`integrations/cli_root.py`) all call `services_for_command()`, so no
command module imports another.
"""

from __future__ import annotations

import typer
from rich.console import Console

from bot.capability import ConfigurationError
from bot.services import Services, open_services
from bot.settings import get_settings


def services_for_command() -> Services:
    """Services for a command; a broken capability configuration (a form file) stops with exit code 2."""
    try:
        return open_services(get_settings())
    except ConfigurationError as error:
        Console().print(f"[red]フォーム定義の誤り[/]: {error}", highlight=False)
        raise typer.Exit(2) from None
