"""Expert visits declared once: check-in/out flow, `madoguchi visits`, its staff API routes, the nightly sweep."""

from typing import Any

from bot.capability import Capability, Task
from handlers.visits.chat import VisitsHandler
from handlers.visits.routes import router
from handlers.visits.service import nightly_sweep
from handlers.visits.cli import visits_app


def _cli() -> dict[str, Any]:
    return {"visits": visits_app}


VISITS = Capability(
    name="visits", handler=VisitsHandler(), cli=_cli, routes=lambda services: router,
    tasks=(Task(name="visits sweep", schedule="daily, by cron: madoguchi visits sweep", run=nightly_sweep),),
)
