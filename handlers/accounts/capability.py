"""Account linking declared once: people and companies, one-time link codes, data requests."""

from typing import Any

from bot.capability import Capability
from handlers.accounts.chat import AccountHandler


def _cli() -> dict[str, Any]:
    from handlers.accounts.cli import companies_app, people_app  # when a command is run

    return {"people": people_app, "companies": companies_app}


ACCOUNTS = Capability(name="accounts", handler=AccountHandler(), cli=_cli)
