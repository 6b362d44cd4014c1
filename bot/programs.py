"""Programs (事業): several support programs in one installation, one YAML file each.

A secretariat contractor runs several programs at once, each with its own
manuals, hearing sheet, hours, contact, staff and platform accounts. Each
program is one file in the programs folder (`MADOGUCHI_PROGRAMS__DIR`),
validated when it is loaded like the forms are: a broken file stops startup
with a message naming the file and the field.

With no programs folder configured there is exactly one program, `default`,
built from the settings (`MADOGUCHI_HOURS__*`, `MADOGUCHI_ESCALATION__CONTACT`, `MADOGUCHI_HEARING__FORM`, the
`MADOGUCHI_LINE__*`/`MADOGUCHI_TELEGRAM__*` credentials): a single-program installation needs
nothing new. The shipped sample (the default `MADOGUCHI_KNOWLEDGE__PATHS`) comes
with two programs in `sample_programs/`, so `make chat` shows the choice.

Secrets never sit in the YAML: a program names the environment variables that
hold its LINE and Telegram credentials (`channel_secret_env: LINE_DX_SECRET`).

Knowledge: a program's `knowledge.sources` are files or folders (relative to
the YAML file). An ingested source belongs to the program whose sources hold
its path, and a staff-answer FAQ file to the program it was published for
(`<data dir>/faq/<program>/published.yaml`); a source no program lists is
shared by every program (the general manuals of `MADOGUCHI_KNOWLEDGE__PATHS`,
the FAQ entries an admin marked shared). `shared: true` on a program's sources
makes them visible to every program as well.
"""

from __future__ import annotations

import os
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.settings import PROJECT_ROOT, SAMPLE_KB_DIR, Settings
from sqlalchemy import true
from bot.text import normalize

#: The sample programs that come with the sample knowledge base.
SAMPLE_PROGRAMS_DIR = PROJECT_ROOT / "sample_programs"
DEFAULT_ID = "default"
ProgramId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")]
ChannelName = Literal["web", "liff", "line", "telegram", "slack", "cli"]
ALL_CHANNELS: tuple[ChannelName, ...] = ("web", "liff", "line", "telegram", "slack", "cli")


class ProgramError(ValueError):
    """A program file that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KnowledgeConfig(_Strict):
    sources: list[Path] = Field(default_factory=list, description="Files or folders, relative to the YAML file.")
    shared: bool = Field(default=False, description="These sources answer in every program too.")


class BusinessHours(_Strict):
    open: str = "10:00"
    close: str = "17:00"
    year_end_closed: str = "12-29..01-03"
    closed_days: list[date] = Field(default_factory=list)
    text: str = "平日 10:00〜17:00（土日祝日・年末年始を除く）"

    @field_validator("open", "close")
    @classmethod
    def _clock(cls, value: str) -> str:
        try:
            time.fromisoformat(value)
        except ValueError:
            raise ValueError(f"「{value}」は時刻ではありません（例 10:00）") from None
        return value

    @field_validator("year_end_closed")
    @classmethod
    def _range(cls, value: str) -> str:
        start, sep, end = value.partition("..")
        for part in (start, end):
            month, _, day = part.partition("-")
            if not sep or not (month.isdigit() and day.isdigit() and 1 <= int(month) <= 12 and 1 <= int(day) <= 31):
                raise ValueError(f"「{value}」は MM-DD..MM-DD の形ではありません（例 12-29..01-03）")
        return value


class LineConfig(_Strict):
    """One LINE Official Account (Messaging API channel) and, for the hearing form, its LIFF app."""
    channel_secret_env: str | None = Field(default=None, description="Env var holding the channel secret.")
    access_token_env: str | None = Field(default=None, description="Env var holding the channel access token.")
    login_channel_id: str | None = Field(default=None, description="LINE Login channel id the LIFF app is in "
                                                                  "(the ID token's audience).")
    liff_id: str | None = Field(default=None, description="LIFF app id (https://liff.line.me/<liff_id>).")


class TelegramConfig(_Strict):
    bot_token_env: str | None = None
    secret_token_env: str | None = None


class SlackConfig(_Strict):
    """Slack by channel mapping: messages in these channels (and DMs started from them) belong to the program."""
    channels: list[str] = Field(default_factory=list, description="Slack channel ids of this program's users.")
    staff_channel: str | None = Field(default=None, description="Where this program's tickets are posted.")


class RichMenuItem(_Strict):
    label: str = Field(min_length=1, max_length=20)
    text: str | None = Field(default=None, description="Sent as the user's message when tapped.")
    liff: bool = Field(default=False, description="Opens the program's LIFF hearing form instead.")
    uri: str | None = None

    @model_validator(mode="after")
    def _one_action(self) -> RichMenuItem:
        if sum([self.text is not None, self.liff, self.uri is not None]) != 1:
            raise ValueError("リッチメニューの項目には text / liff / uri のどれか一つを書いてください")
        return self


class Program(_Strict):
    id: ProgramId
    name: str = Field(min_length=1, max_length=200)
    short_name: str | None = Field(default=None, max_length=40)
    aliases: list[str] = Field(default_factory=list, description="Names people use for the program.")
    description: str = ""
    default: bool = False
    fiscal_year: int | None = Field(default=None, ge=2000, le=2100)
    knowledge: KnowledgeConfig = Field(default_factory=KnowledgeConfig)
    hearing_form: str | None = Field(default=None, description="Form id (MADOGUCHI_HEARING__FORMS_DIRS) or none.")
    visit_rules: Path | None = Field(default=None, description="Program rules YAML for visits, or none.")
    hours: BusinessHours = Field(default_factory=BusinessHours)
    contact: str = "事務局 お問い合わせ窓口（電話番号は事業のご案内をご覧ください）"
    channels: list[ChannelName] = Field(default_factory=lambda: list(ALL_CHANNELS))
    line: LineConfig | None = None
    telegram: TelegramConfig | None = None
    slack: SlackConfig = Field(default_factory=SlackConfig)
    rich_menu: list[RichMenuItem] = Field(default_factory=list, max_length=6)
    #: Where the file was read from (sources and rules are relative to it); None for the built-in default.
    path: Path | None = Field(default=None, exclude=True)

    @property
    def label(self) -> str:
        return self.short_name or self.name

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def source_paths(self) -> list[Path]:
        return [(p if p.is_absolute() else self.base_dir / p).resolve() for p in self.knowledge.sources]

    def rules_file(self) -> Path | None:
        if self.visit_rules is None:
            return None
        return (self.visit_rules if self.visit_rules.is_absolute() else self.base_dir / self.visit_rules).resolve()

    def liff_url(self) -> str | None:
        """Where LINE opens the program's hearing form (None when the program has no LIFF app)."""
        return f"https://liff.line.me/{self.line.liff_id}" if self.line and self.line.liff_id else None

    def owns(self, source_path: str | Path) -> bool:
        path = Path(source_path)
        return any(path == root or path.is_relative_to(root) for root in self.source_paths())

    # ---- credentials (names of env vars in the YAML; the default program falls back to the settings)
    def secret(self, env_name: str | None) -> str | None:
        return os.environ.get(env_name) or None if env_name else None


class ProgramCatalog:
    """Every configured program, in file order; exactly one is the default."""
    def __init__(self, programs: list[Program], settings: Settings | None = None) -> None:
        if not programs:
            raise ProgramError("プログラムが一つもありません")
        ids = [p.id for p in programs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ProgramError(f"プログラム id が重複しています: {', '.join(duplicates)}")
        defaults = [p for p in programs if p.default]
        if len(programs) == 1 and not defaults:
            programs = [programs[0].model_copy(update={"default": True})]
            defaults = programs
        if len(defaults) != 1:
            raise ProgramError("default: true のプログラムをちょうど一つにしてください"
                               f"（今は {len(defaults)} つ: {', '.join(p.id for p in defaults) or 'なし'}）")
        self.programs: dict[str, Program] = {p.id: p for p in programs}
        self.default: Program = defaults[0]
        self.settings = settings
        #: where staff-answer FAQ files are published (`knowledge.faq_review`), one folder per program
        self._faq_dir = (settings.data_dir / "faq").resolve() if settings is not None else None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.programs.values())

    def __len__(self) -> int:
        return len(self.programs)

    def get(self, program_id: str | None) -> Program | None:
        return self.programs.get(program_id or "")

    def owner_id(self, program_id: str | None) -> str:
        """The program that owns a record: rows stored without one (older data, the general entry
        point) belong to the default program."""
        return program_id if program_id in self.programs else self.default.id

    def _published_by(self, source_path: str) -> str | None:
        folder = Path(source_path).parent
        if self._faq_dir is not None and folder.name in self.programs and folder.parent.resolve() == self._faq_dir:
            return folder.name
        return None

    @property
    def several(self) -> bool:
        return len(self.programs) > 1

    def program_of_source(self, source_path: str) -> str | None:
        """The program whose knowledge sources hold this file, or whose staff published it as FAQ
        (`<data dir>/faq/<program>/`); None = shared by all."""
        published = self._published_by(source_path)
        if published is not None:
            return published
        for program in self:
            if program.owns(source_path):
                return program.id
        return None

    def source_filter(self, program_id: str | None) -> Any:
        """The knowledge filter of a conversation of this program (`knowledge.service.SourceFilter`): its
        own sources, sources no program lists, and sources marked shared. None at a general entry point
        (no program, or a single-program installation): every source answers."""
        from knowledge.service import SourceFilter  # heavy: loads chromadb and the embedder

        program = self.get(program_id)
        if program is None or not self.several:
            return None
        shared_programs = {p.id for p in self if p.knowledge.shared}

        def allows(path: str) -> bool:
            owner = self.program_of_source(path)
            return owner is None or owner == program.id or owner in shared_programs

        return SourceFilter(program.id, allows)

    def general_entry(self, program_id: str | None) -> bool:
        """Whether a conversation of `program_id` is at the general entry point of an installation with several
        programs: any program's document may answer there, so the knowledge gate reads its general threshold."""
        return self.get(program_id) is None and self.several

    def named_in(self, text: str) -> Program | None:
        """The one program a text names by its id, name, short name or an alias."""
        said = normalize(text).replace(" ", "").lower()
        found = {p.id for p in self
                 for name in (p.id, p.name, p.short_name or "", *p.aliases)
                 if name and normalize(name).replace(" ", "").lower() in said}
        return self.programs[found.pop()] if len(found) == 1 else None

    # ---- the default program's platform credentials come from the settings when its file names none
    def line_credentials(self, program: Program) -> tuple[str, str] | None:
        line = program.line or LineConfig()
        secret, token = program.secret(line.channel_secret_env), program.secret(line.access_token_env)
        if program.id == self.default.id and self.settings is not None and not (secret or token):
            s = self.settings
            secret = s.line.channel_secret.get_secret_value() if s.line.channel_secret else None
            token = s.line.channel_access_token.get_secret_value() if s.line.channel_access_token else None
        return (secret, token) if secret and token else None

    def telegram_credentials(self, program: Program) -> tuple[str, str] | None:
        telegram = program.telegram or TelegramConfig()
        token, secret = program.secret(telegram.bot_token_env), program.secret(telegram.secret_token_env)
        if program.id == self.default.id and self.settings is not None and not (token or secret):
            s = self.settings
            token = s.telegram.bot_token.get_secret_value() if s.telegram.bot_token else None
            secret = s.telegram.secret_token.get_secret_value() if s.telegram.secret_token else None
        return (token, secret) if token and secret else None

    def program_of_slack_channel(self, channel_id: str | None) -> Program | None:
        for program in self:
            if channel_id and channel_id in program.slack.channels:
                return program
        return None


def builtin_default(settings: Settings) -> Program:
    """The one program of an installation without program files, from the settings it always had."""
    return Program(
        id=DEFAULT_ID, name="既定の事業", default=True, hearing_form=settings.hearing.form,
        visit_rules=settings.visits.rules_file, contact=settings.escalation.contact,
        hours=BusinessHours(open=settings.hours.open, close=settings.hours.close,
                            year_end_closed=settings.hours.year_end_closed,
                            closed_days=list(settings.hours.extra_closed_days), text=settings.hours.text),
        slack=SlackConfig(staff_channel=settings.slack.staff_channel),
    )


def programs_dir(settings: Settings) -> Path | None:
    """The configured folder; else the sample programs when the knowledge is the shipped sample."""
    configured = settings.programs.dir
    if configured is not None:
        return Path(configured)
    if [Path(p).resolve() for p in settings.knowledge.paths] == [SAMPLE_KB_DIR.resolve()]:
        return SAMPLE_PROGRAMS_DIR if SAMPLE_PROGRAMS_DIR.exists() else None
    return None


def load_program(path: Path) -> Program:
    """Parse and validate one program file; errors name the file and the field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProgramError(f"{path}: YAML として読めません: {exc}") from exc
    if not isinstance(raw, dict):
        raise ProgramError(f"{path}: プログラム定義は key: value の形で書いてください")
    try:
        return Program.model_validate({**raw, "path": path.resolve()})
    except ValidationError as exc:
        problems = [f"{'.'.join(str(s) for s in err['loc']) or '(program)'}: {err['msg']}" for err in exc.errors()]
        raise ProgramError(f"{path}: プログラム定義に誤りがあります\n  " + "\n  ".join(problems)) from exc


def load_programs(settings: Settings) -> ProgramCatalog:
    folder = programs_dir(settings)
    if folder is None:
        return ProgramCatalog([builtin_default(settings)], settings)
    if not folder.is_dir():
        raise ProgramError(f"{folder}: プログラム定義のフォルダが見つかりません（MADOGUCHI_PROGRAMS__DIR）")
    files = sorted(p for p in folder.glob("*.y*ml") if not p.name.startswith("."))
    if not files:
        raise ProgramError(f"{folder}: プログラム定義（*.yaml）がありません")
    return ProgramCatalog([load_program(p) for p in files], settings)


def check_programs(catalog: ProgramCatalog, form_ids: list[str]) -> tuple[list[str], list[str]]:
    """(errors, warnings) beyond the schema: forms, files and credentials a program refers to."""
    errors: list[str] = []
    warnings: list[str] = []
    for program in catalog:
        where = str(program.path) if program.path else f"program {program.id}"
        if program.hearing_form and program.hearing_form not in form_ids:
            errors.append(f"{where}: hearing_form「{program.hearing_form}」のフォームがありません"
                          f"（あるもの：{', '.join(form_ids)}）")
        rules = program.rules_file()
        if rules is not None and not rules.exists():
            errors.append(f"{where}: visit_rules「{rules}」が見つかりません")
        for source in program.source_paths():
            if not source.exists():
                errors.append(f"{where}: knowledge.sources「{source}」が見つかりません")
        for name in ("line", "telegram"):
            config = getattr(program, name)
            if config is None:
                continue
            for field, env in config.model_dump().items():
                if field.endswith("_env") and env and not os.environ.get(env):
                    warnings.append(f"{where}: {name}.{field} の環境変数 {env} が未設定です（{name} は無効）")
        if any(item.liff for item in program.rich_menu) and not (program.line and program.line.liff_id):
            errors.append(f"{where}: rich_menu に liff の項目がありますが line.liff_id がありません")
        if program.line and program.line.liff_id and not program.line.login_channel_id:
            errors.append(f"{where}: line.liff_id には line.login_channel_id（LINE ログインチャネル ID）が必要です")
    others = [p for p in catalog]
    for program in others:
        for other in others:
            if program.id < other.id:
                overlap = set(program.slack.channels) & set(other.slack.channels)
                if overlap:
                    errors.append(f"Slack チャネル {', '.join(sorted(overlap))} が {program.id} と {other.id} の両方にあります")
    return errors, warnings


def describe(program: Program) -> dict[str, Any]:
    """One row of `madoguchi programs list`."""
    return {"id": program.id, "name": program.name, "default": program.default,
            "fiscal_year": program.fiscal_year, "sources": [str(p) for p in program.source_paths()],
            "hearing_form": program.hearing_form, "channels": list(program.channels),
            "line": bool(program.line), "telegram": bool(program.telegram),
            "slack_channels": list(program.slack.channels), "file": str(program.path) if program.path else None}


def catalog_for(services: Any) -> ProgramCatalog:
    """The programs of a running process, loaded once per `Services` (validated on first use)."""
    return services.shared("programs", lambda: load_programs(services.settings))  # type: ignore[no-any-return]


def program_is(column: Any, program_id: str, catalog: ProgramCatalog) -> Any:
    """SQL test that a record belongs to `program_id` (rows stored before programs, NULL, are the default's)."""
    if program_id == catalog.default.id:
        return column.is_(None) | (column == program_id)
    return column == program_id


def program_in(column: Any, program_ids: set[str] | None, catalog: ProgramCatalog) -> Any:
    """SQL test that a record belongs to one of `program_ids` (None = every program: an admin)."""
    if program_ids is None:
        return true()
    test = column.in_(sorted(program_ids))
    return test | column.is_(None) if catalog.default.id in program_ids else test


def staff_programs(account: Any, catalog: ProgramCatalog) -> set[str] | None:
    """The programs a staff account works for; None = every program (an admin). An account made before
    programs (no list) works for the default program."""
    if getattr(account, "role", None) == "admin":
        return None
    listed = [p for p in (getattr(account, "programs", None) or []) if isinstance(p, str)]
    return set(listed) if listed else {catalog.default.id}


def token_programs(programs: list[Any] | None, catalog: ProgramCatalog) -> set[str] | None:
    """The programs an API token may read; ["*"] = all, none listed = the default program."""
    listed = [p for p in (programs or []) if isinstance(p, str)]
    if "*" in listed:
        return None
    return set(listed) if listed else {catalog.default.id}


def conversation_in(column: Any, program_ids: set[str] | None, catalog: ProgramCatalog) -> Any:
    """Like `program_in` for conversations, whose general entry point ('') belongs to the default program."""
    if program_ids is None:
        return true()
    ids = set(program_ids) | ({""} if catalog.default.id in program_ids else set())
    return column.in_(sorted(ids))


def may_see(program_ids: set[str] | None, record_program: str | None, catalog: ProgramCatalog) -> bool:
    """Whether someone working for `program_ids` (None = all) may read or act on a record of that program."""
    return program_ids is None or catalog.owner_id(record_program) in program_ids
