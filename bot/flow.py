"""Declarative flows: a table of steps (prompt, parse, next) from which the re-prompts follow.

A `StepFlow` keeps its current step's name in `flow_state["step"]`. The engine
hands every message of the active flow to `on_flow_message`, which runs the
step's `parse`; `parse` returning None means "not an answer" (a question): the
engine answers it and calls `reprompt`, which asks the current step's `prompt`
again, so every step of the table re-prompts, never only the ones someone
remembered to list. A step that takes free text treats a message that looks
like a question as a question, not as its answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot.handler import Handler, Turn
from bot.messages import Reply
from bot.text import looks_like_question


@dataclass(frozen=True)
class Step:
    """One question of a flow."""

    #: Ask this step's question (also after a mid-flow question).
    prompt: Callable[[Turn], list[Reply]]
    #: Read an answer: the replies (having moved the flow on), or None when the message is not an answer.
    parse: Callable[[Turn], list[Reply] | None]
    #: The steps an answer can lead to (empty: the flow ends); checked when the flow is built.
    next: tuple[str, ...] = ()
    #: Any text answers it (a reason, a note), except a message that looks like a question.
    free_text: bool = False


class StepFlow(Handler):
    """A handler whose flow is a table of steps; subclasses build the table in `steps()`."""

    def __init__(self) -> None:
        self._steps: Mapping[str, Step] | None = None

    def steps(self) -> Mapping[str, Step]:
        raise NotImplementedError

    @property
    def table(self) -> Mapping[str, Step]:
        if self._steps is None:
            steps = self.steps()
            for name, step in steps.items():
                unknown = [n for n in step.next if n not in steps]
                if unknown:
                    raise ValueError(f"{self.name}: step {name} leads to unknown steps {unknown}")
            self._steps = steps
        return self._steps

    def current_step(self, turn: Turn) -> Step | None:
        return self.table.get(str(turn.flow_state.get("step", "")))

    def on_flow_message(self, turn: Turn) -> list[Reply] | None:
        step = self.current_step(turn)
        if step is None:
            return None
        if step.free_text and turn.text and not turn.message.choice and looks_like_question(turn.text):
            return None
        return step.parse(turn)

    def reprompt(self, turn: Turn) -> list[Reply]:
        step = self.current_step(turn)
        return step.prompt(turn) if step is not None else []
