"""The hearing sheet declared once: chat flow, `madoguchi hearing`, its staff API routes, the form check at startup."""

from typing import Any

from bot.capability import Capability
from handlers.hearing.chat import HearingHandler, check_forms


# The CLI and the routes are imported when asked for (FastAPI and openpyxl are most of their import time):
# every command checks the forms at startup, and `madoguchi knowledge ingest` should not load the staff API.
def _cli() -> dict[str, Any]:
    from handlers.hearing.cli import hearing_app

    return {"hearing": hearing_app}


def _routes(services: Any) -> Any:
    from handlers.hearing.routes import router

    return router


HEARING = Capability(name="hearing", handler=HearingHandler(), cli=_cli, routes=_routes, check=check_forms)
