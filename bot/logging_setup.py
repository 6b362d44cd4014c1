"""Structured JSON logs (structlog over the standard logging module), masked, kept for a set time.

One line per event, JSON, with a request or conversation id when one is
bound, so logs can be searched (`madoguchi logs search`) and shipped. Every
string in an event passes through `mask_personal_data` first: a phone number
a user typed never reaches a log file. Besides stderr, events go to
`<log dir>/madoguchi.jsonl`, rotated at midnight UTC; `madoguchi logs purge`
deletes rotated files older than the retention (default 90 days; the
programs ask for at least one month). Logs are not business records: purging
them never touches the database, whose audit trail is kept separately.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from bot.privacy import mask_personal_data

LOG_FILE = "madoguchi.jsonl"
_configured = False


def mask_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: personal data masked in every string value (the message included)."""
    for key, value in list(event.items()):
        if isinstance(value, str) and key not in ("timestamp", "level", "logger"):
            event[key] = mask_personal_data(value)
    return event


def _format_message(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """stdlib records carry %-style args; render them before masking."""
    record = event.get("_record")
    if record is not None and record.args:
        event["event"] = record.getMessage()
    return event


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time of the record. A handler bound to the stream
    of its creation time fails with "I/O operation on closed file" once that stream is replaced
    and closed (pytest's capture between tests, a supervisor reopening stderr)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: str = "INFO", log_dir: Path | None = None, *, force: bool = False) -> None:
    global _configured
    if _configured and not force:
        return
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[_format_message, structlog.stdlib.ProcessorFormatter.remove_processors_meta, mask_processor,
                    structlog.processors.format_exc_info, structlog.processors.JSONRenderer(ensure_ascii=False)],
        foreign_pre_chain=shared,
    )
    handlers: list[logging.Handler] = [_CurrentStderrHandler()]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.TimedRotatingFileHandler(
            log_dir / LOG_FILE, when="midnight", utc=True, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    for noisy in ("chromadb", "httpx", "urllib3", "alembic", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True


def rotated_files(log_dir: Path) -> list[tuple[Path, datetime]]:
    """Rotated log files (madoguchi.jsonl.YYYY-MM-DD) with the day they cover."""
    found = []
    for path in log_dir.glob(f"{LOG_FILE}.*"):
        try:
            day = datetime.strptime(path.name.rsplit(".", 1)[-1], "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            continue
        found.append((path, day))
    return sorted(found, key=lambda item: item[1])


def purge_logs(log_dir: Path, retention_days: int, now: datetime | None = None) -> list[Path]:
    """Delete rotated log files older than the retention; the current file is never deleted."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    removed = []
    for path, day in rotated_files(log_dir):
        if day < cutoff:
            path.unlink()
            removed.append(path)
    return removed
