"""Form definitions: YAML files validated by pydantic when they are loaded.

A form has an `id` and an integer `version`; several versions of one form may
sit side by side so responses begun or submitted under an old version keep
their questions and labels. A broken file stops startup with a message that
names the file, the question id and the field, because a secretariat editing
YAML by hand must be told exactly what to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.capability import ConfigurationError

if TYPE_CHECKING:
    from bot.services import Services

DEFINITIONS_DIR = Path(__file__).resolve().parent / "definitions"

QuestionType = Literal[
    "text", "integer", "single_choice", "multi_choice", "yes_no", "date",
    "postal_code", "address", "phone", "email", "corporate_number",
]
CompanyField = Literal["name", "corporate_number", "address", "industry", "employees"]
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)]


class FormDefinitionError(ConfigurationError, ValueError):
    """A form file that cannot be used; the message names file, question and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Choice(_Strict):
    """One option of a choice question; a bare string in YAML is both value and label."""

    value: str
    label: str


class Condition(_Strict):
    """Ask a question only when an earlier answer matches (for multi-choice: contains)."""

    question: Identifier
    equals: str | bool | int | None = None
    in_: list[str | bool | int] | None = Field(default=None, alias="in")
    not_equals: str | bool | int | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [self.equals is not None, self.in_ is not None, self.not_equals is not None]
        if sum(tests) != 1:
            raise ValueError("when には equals / in / not_equals のどれか一つを書いてください")
        return self

    def expected_values(self) -> list[str | bool | int]:
        if self.in_ is not None:
            return list(self.in_)
        return [self.equals if self.equals is not None else self.not_equals]  # type: ignore[list-item]

    def holds(self, answer: Any) -> bool:
        """Whether the condition is met by the (stored) answer of the referenced question."""
        if answer is None:
            return False
        values = answer if isinstance(answer, list) else [answer]
        if self.not_equals is not None:
            return self.not_equals not in values
        return any(v in values for v in self.expected_values())


class Question(_Strict):
    id: Identifier
    prompt: str = Field(min_length=1)
    label: str | None = Field(default=None, description="Short name for the summary and export columns.")
    help: str | None = None
    example: str | None = None
    type: QuestionType
    required: bool = True
    options: list[Choice] = Field(default_factory=list)
    min: int | None = None
    max: int | None = None
    unit: str | None = None
    max_length: int = Field(default=1000, ge=1, le=10000)
    min_selections: int | None = Field(default=None, ge=1)
    max_selections: int | None = Field(default=None, ge=1)
    when: Condition | None = None
    company_field: CompanyField | None = None

    @field_validator("options", mode="before")
    @classmethod
    def _bare_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"value": v, "label": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Question:
        choice = self.type in ("single_choice", "multi_choice")
        if choice and len(self.options) < 2:
            raise ValueError("選択式の質問には options を2つ以上書いてください")
        if not choice and self.options:
            raise ValueError(f"type={self.type} の質問に options は書けません")
        if len({o.value for o in self.options}) != len(self.options):
            raise ValueError("options の value が重複しています")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min が max より大きくなっています")
        if (self.min is not None or self.max is not None) and self.type != "integer":
            raise ValueError("min / max は type=integer の質問にだけ書けます")
        if (self.min_selections or self.max_selections) and self.type != "multi_choice":
            raise ValueError("min_selections / max_selections は type=multi_choice の質問にだけ書けます")
        return self

    @property
    def short_label(self) -> str:
        return self.label or self.prompt

    def option_label(self, value: str) -> str:
        for option in self.options:
            if option.value == value:
                return option.label
        return value


class Section(_Strict):
    id: Identifier
    title: str = Field(min_length=1)
    questions: list[Question] = Field(min_length=1)


class Form(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$", max_length=60)]
    version: int = Field(ge=1)
    title: str = Field(min_length=1)
    description: str = ""
    completion_message: str = "ご回答ありがとうございました。事務局で内容を確認し、ご連絡いたします。"
    #: Where the form may be filled in: chat channels (web, line, telegram, slack, cli) and `liff`, the web
    #: form inside LINE. None = every chat channel. On a chat channel not listed, the chat offers the button
    #: that opens the form where it may run (LINE: the LIFF form), so personal data is never typed into
    #: a platform's messages.
    channels: list[Literal["web", "liff", "line", "telegram", "slack", "cli"]] | None = None
    sections: list[Section] = Field(min_length=1)

    def allows(self, channel: str) -> bool:
        return self.channels is None or channel in self.channels

    @model_validator(mode="after")
    def _references(self) -> Form:
        seen: dict[str, Question] = {}
        for question in self.questions:
            if question.id in seen:
                raise ValueError(f"質問 id「{question.id}」が重複しています")
            if question.when is not None:
                ref = seen.get(question.when.question)
                if ref is None:
                    raise ValueError(f"質問「{question.id}」の when が、それより前にない質問"
                                     f"「{question.when.question}」を参照しています")
                _check_condition_values(question, ref)
            seen[question.id] = question
        return self

    @property
    def questions(self) -> list[Question]:
        return [q for section in self.sections for q in section.questions]

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)

    def section_of(self, question_id: str) -> Section | None:
        return next((s for s in self.sections if any(q.id == question_id for q in s.questions)), None)


def _check_condition_values(question: Question, ref: Question) -> None:
    assert question.when is not None
    for value in question.when.expected_values():
        if ref.type in ("single_choice", "multi_choice"):
            if value not in {o.value for o in ref.options}:
                raise ValueError(f"質問「{question.id}」の when の値「{value}」は「{ref.id}」の選択肢にありません")
        elif ref.type == "yes_no" and not isinstance(value, bool):
            raise ValueError(f"質問「{question.id}」の when: 「{ref.id}」ははい/いいえの質問なので true か false を書いてください")


class FormCatalog:
    """Every version of every form found in the definition directories."""

    def __init__(self, forms: list[Form]) -> None:
        self._forms: dict[tuple[str, int], Form] = {}
        for form in forms:
            key = (form.id, form.version)
            if key in self._forms:
                raise FormDefinitionError(f"フォーム {form.id} の版 {form.version} が二つあります")
            self._forms[key] = form

    def latest(self, form_id: str) -> Form | None:
        versions = [f for (fid, _), f in self._forms.items() if fid == form_id]
        return max(versions, key=lambda f: f.version) if versions else None

    def get(self, form_id: str, version: int) -> Form | None:
        """That exact version, else the newest (old responses are read by question id)."""
        return self._forms.get((form_id, version)) or self.latest(form_id)

    def form_ids(self) -> list[str]:
        return sorted({fid for fid, _ in self._forms})

    def versions(self, form_id: str) -> list[Form]:
        return sorted((f for (fid, _), f in self._forms.items() if fid == form_id), key=lambda f: f.version)


def load_form(path: Path) -> Form:
    """Parse and validate one YAML file; errors name the file, question id and field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise FormDefinitionError(f"{path}: YAML として読めません: {exc}") from exc
    try:
        return Form.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{_describe_location(raw, err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise FormDefinitionError(f"{path}: フォーム定義に誤りがあります\n  " + "\n  ".join(problems)) from exc


def _describe_location(raw: Any, loc: tuple[Any, ...]) -> str:
    """('sections', 0, 'questions', 3, 'type') -> "sections[0].questions[3](id=employees).type"."""
    parts: list[str] = []
    node = raw
    for step in loc:
        if isinstance(step, int):
            label = f"[{step}]"
            try:
                node = node[step]
                if isinstance(node, dict) and "id" in node:
                    label += f"(id={node['id']})"
            except (IndexError, KeyError, TypeError):
                node = None
            parts.append(label)
        else:
            node = node.get(step) if isinstance(node, dict) else None
            parts.append(("." if parts else "") + str(step))
    return "".join(parts) or "(form)"


def load_catalog(extra_dirs: list[Path] | None = None) -> FormCatalog:
    """The bundled forms plus any operator-provided directories."""
    forms: list[Form] = []
    for directory in [DEFINITIONS_DIR, *(extra_dirs or [])]:
        if not directory.exists():
            raise FormDefinitionError(f"{directory}: フォーム定義のフォルダが見つかりません")
        for path in sorted(directory.glob("*.y*ml")):
            forms.append(load_form(path))
    return FormCatalog(forms)


def catalog(services: Services) -> FormCatalog:
    """Every questionnaire definition (bundled plus MADOGUCHI_HEARING__FORMS_DIRS), validated once per process."""
    return services.shared("hearing.forms", lambda: load_catalog(services.settings.hearing.forms_dirs))
