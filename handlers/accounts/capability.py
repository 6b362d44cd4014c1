"""Account linking declared once: people and companies, one-time link codes, data requests."""

from typing import Any

from bot.capability import Capability
from handlers.accounts.chat import AccountHandler
from handlers.accounts.cli import companies_app, people_app


def _cli() -> dict[str, Any]:
    return {"people": people_app, "companies": companies_app}


ACCOUNTS = Capability(name="accounts", handler=AccountHandler(), cli=_cli)
