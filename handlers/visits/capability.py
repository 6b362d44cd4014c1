"""Expert visits declared once: check-in/out flow, `madoguchi visits`, its staff API routes, the nightly sweep."""

from typing import Any

from bot.capability import Capability, Task
from handlers.visits.chat import VisitsHandler
from handlers.visits.service import nightly_sweep


# The CLI and the routes are imported when asked for, as the hearing sheet's (handlers/hearing/capability.py).
def _cli() -> dict[str, Any]:
    from handlers.visits.cli import visits_app

    return {"visits": visits_app}


def _routes(services: Any) -> Any:
    from handlers.visits.routes import router

    return router


VISITS = Capability(
    name="visits", handler=VisitsHandler(), cli=_cli, routes=_routes,
    tasks=(Task(name="visits sweep", schedule="daily, by cron: madoguchi visits sweep", run=nightly_sweep),),
)
