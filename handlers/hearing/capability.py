"""The hearing sheet declared once: chat flow, `madoguchi hearing`, its staff API routes, the form check at startup."""

from typing import Any

from bot.capability import Capability
from handlers.hearing.chat import HearingHandler, check_forms
from handlers.hearing.routes import router
from handlers.hearing.cli import hearing_app


def _cli() -> dict[str, Any]:
    return {"hearing": hearing_app}


HEARING = Capability(name="hearing", handler=HearingHandler(), cli=_cli, routes=lambda services: router,
                     check=check_forms)
