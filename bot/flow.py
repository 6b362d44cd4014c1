"""Declarative flows: a table of steps (prompt, parse, next) from which the re-prompts follow.

A `StepFlow` knows its current step by name (`step_name`: `flow_state["step"]`
unless the flow keeps it elsewhere, as the hearing sheet keeps its cursor in
the response). The engine offers every message to the active flow first
(`offer`), which reads it with the current step:

- a message a handler claims as a button or command, or a leave word
  (`turn.claimed_by`: a link code, 「メニュー」, 「やめる」, another capability's
  button, the flow's own commands) is declined (`NOT_MINE`) unless the step
  `expects` it: the step's own buttons, or a choice whose label is such a word;
- a free-text step treats a message that looks like a question as a question;
- otherwise `parse` reads it: the replies (having moved the flow on), or None
  when it is not an answer (a question): the engine answers it and calls
  `reprompt`, which asks the current step's `prompt` again, so every step of
  the table re-prompts, never only the ones someone remembered to list.

A table may be fixed (`steps()`, the visits flow) or built per turn (`table`,
the hearing sheet's from its form's YAML); either way its `next` names are
checked once, when it is first built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot.handler import NOT_MINE, FlowResult, Handler, Turn
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
    #: True when a message that is also a button, a command or a leave word (`turn.claimed_by`) is this step's
    #: answer (the step's own buttons, a choice whose label is such a word); else it is declined. No side effects.
    expects: Callable[[Turn], bool] | None = None


class StepFlow(Handler):
    """A handler whose flow is a table of steps; subclasses build it in `steps()` (or per turn in `table`)."""

    def __init__(self) -> None:
        self._tables: dict[object, Mapping[str, Step]] = {}

    def steps(self) -> Mapping[str, Step]:
        raise NotImplementedError

    def table(self, turn: Turn) -> Mapping[str, Step]:
        """The step table this turn's flow walks (a fixed one by default)."""
        return self.checked_table(None, self.steps)

    def checked_table(self, key: object, build: Callable[[], Mapping[str, Step]]) -> Mapping[str, Step]:
        """The table cached under `key`, built and checked the first time."""
        if key not in self._tables:
            self._tables[key] = self.checked(build())
        return self._tables[key]

    def checked(self, steps: Mapping[str, Step]) -> Mapping[str, Step]:
        """`steps`, once every `next` of it is known to name one of its steps."""
        for name, step in steps.items():
            unknown = [n for n in step.next if n not in steps]
            if unknown:
                raise ValueError(f"{self.name}: step {name} leads to unknown steps {unknown}")
        return steps

    def step_name(self, turn: Turn) -> str | None:
        """The name of the step the conversation is at."""
        step = turn.flow_state.get("step")
        return str(step) if step is not None else None

    def current_step(self, turn: Turn) -> Step | None:
        return self.table(turn).get(self.step_name(turn) or "")

    def offer(self, turn: Turn) -> FlowResult:
        """A message someone else would take (`turn.claimed_by`) is the flow's only if its step expects it."""
        step = self.current_step(turn)
        if turn.claimed_by and not (step is not None and step.expects is not None and step.expects(turn)):
            return NOT_MINE
        return self.on_flow_message(turn)

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
