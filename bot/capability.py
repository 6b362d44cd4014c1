"""How a capability declares itself, once: name, handler, CLI, HTTP routes, scheduled tasks, startup check.

Each `handlers/<capability>/` package builds one `Capability`; the ordered list
of them is `handlers/capabilities.py` (the one place that says who is installed
and in which order; `Settings.capabilities` names it). The engine, the CLI root
and the HTTP app read that list; the core never imports a capability.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.handler import Handler
    from bot.services import Services


@dataclass(frozen=True)
class Task:
    """A job run on a schedule by the deployment (cron) through `madoguchi <command>`, or in-process."""

    name: str
    #: Human description of when it runs ("daily, by cron: madoguchi visits sweep").
    schedule: str
    #: What runs (given the process's services); None when only the CLI command runs it.
    run: Callable[[Services], object] | None = None
    #: Run in-process by the delivery worker every so many seconds (None: run from cron through the CLI).
    every_seconds: float | None = None


@dataclass(frozen=True)
class Capability:
    name: str
    #: The chat side (None: a capability with no chat).
    handler: Handler | None = None
    #: `madoguchi <name> ...` command groups: {group name: typer app}, loaded lazily by the CLI root.
    cli: Callable[[], dict[str, Any]] | None = None
    #: HTTP routes of the capability: given the services, a FastAPI `APIRouter` (in `handlers/<name>/routes.py`);
    #: the web app includes them in the order of the capability list.
    routes: Callable[[Services], Any] | None = None
    tasks: tuple[Task, ...] = field(default=())
    #: Startup check of the capability's configuration: raise `ConfigurationError` to stop startup.
    check: Callable[[Services], None] | None = None


class ConfigurationError(Exception):
    """A capability's configuration is broken (a form definition, a rules file): startup must stop."""


def load_capabilities(spec: str) -> tuple[Capability, ...]:
    """Import `module:ATTRIBUTE` (the ordered capability list) by name: the core never imports handlers."""
    module_name, _, attribute = spec.partition(":")
    module = importlib.import_module(module_name)
    capabilities: Sequence[Capability] = getattr(module, attribute or "CAPABILITIES")
    names = [c.name for c in capabilities]
    if len(set(names)) != len(names):
        raise ValueError(f"{spec}: capability names must be unique: {names}")
    return tuple(capabilities)
