"""Escalation declared once: tickets from chat, staff accounts, API tokens, the SLA check."""

from typing import Any

from bot.capability import Capability, Task
from handlers.escalation.chat import EscalationHandler
from handlers.escalation.tickets import overdue_check


def _cli() -> dict[str, Any]:
    from handlers.escalation.cli import api_tokens_app, staff_app, tickets_app  # when a command is run

    return {"staff": staff_app, "tickets": tickets_app, "tokens": api_tokens_app}


ESCALATION = Capability(
    name="escalation", handler=EscalationHandler(), cli=_cli,
    tasks=(Task(name="tickets overdue", schedule="every minute (in the delivery worker)", every_seconds=60,
                run=overdue_check),),
)
