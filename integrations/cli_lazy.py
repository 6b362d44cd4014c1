"""Command groups of `madoguchi` imported only when one of them is run or asked for its own help.

Importing every capability to register its commands was most of process start (`madoguchi --help` loaded the
knowledge pipeline, FastAPI and the database layer). The root group lists each group from a small table (its
name, where its typer app is, its one-line help) and imports the group when the command line names it.
tests/test_cli_start.py checks the table against what the capabilities declare (`Capability.cli`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperGroup


@dataclass(frozen=True)
class LazyGroup:
    """One command group: `where` is "module:attribute" (a typer app), or "capability:<name>" for a group the
    capability of that name declares (`Capability.cli()[name]`, in handlers/capabilities.py's list)."""

    name: str
    where: str
    help: str

    def load(self) -> typer.Typer:
        kind, _, target = self.where.partition(":")
        if kind == "capability":
            capability = _capability(target)
            groups: dict[str, Any] = capability.cli() if capability.cli else {}
            return groups[self.name]
        return getattr(importlib.import_module(kind), target)  # type: ignore[no-any-return]


def _capability(name: str) -> Any:
    """The capability called `name`, from its own module (handlers/<name>/capability.py) when it is there:
    importing the registry (handlers/capabilities.py) would import every capability, FastAPI routes and
    openpyxl included, to run one command (`madoguchi knowledge ingest` spent most of its time there)."""
    from bot.capability import Capability

    where = f"handlers.{name}.capability"
    try:
        module = importlib.import_module(where)
    except ModuleNotFoundError as missing:
        if missing.name is None or not f"{where}.".startswith(f"{missing.name}."):
            raise  # the module is there but needs one that is not: say so, not look elsewhere
        module = None
    found = [value for value in vars(module).values()
             if isinstance(value, Capability) and value.name == name] if module else []
    if found:
        return found[0]
    from handlers.capabilities import CAPABILITIES

    return next(c for c in CAPABILITIES if c.name == name)


def lazy_root(groups: tuple[LazyGroup, ...]) -> type[TyperGroup]:
    """A root group class (`typer.Typer(cls=...)`) that lists `groups` after its own commands and imports one
    only to run it or show its help."""
    table = {group.name: group for group in groups}

    class LazyRoot(TyperGroup):
        def list_commands(self, ctx: Any) -> list[str]:
            return [*self.commands, *(name for name in table if name not in self.commands)]

        def get_command(self, ctx: Any, cmd_name: str) -> Any:
            """The group once loaded; before that, for the listing, a stand-in with its name and help."""
            found = self.commands.get(cmd_name)
            if found is None and cmd_name in table:
                return TyperGroup(name=cmd_name, help=table[cmd_name].help)
            return found

        def resolve_command(self, ctx: Any, args: list[str]) -> Any:
            name = str(args[0]) if args else ""
            if name in table and name not in self.commands:
                command = typer.main.get_group(table[name].load())
                command.name = name
                self.commands[name] = command
            return super().resolve_command(ctx, args)

    return LazyRoot
