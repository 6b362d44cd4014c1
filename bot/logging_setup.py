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

import atexit
import copy
import logging
import logging.handlers
import queue
import sys
import time
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from bot.privacy import mask_personal_data

LOG_FILE = "madoguchi.jsonl"
#: A logged string longer than this is cut (a request body or a huge exception text is never worth a log line).
MAX_VALUE_CHARS = 8192
#: Records waiting for the writer thread; beyond this they are dropped (counted) rather than block a request.
QUEUE_SIZE = 10_000
#: Loggers whose output we own: uvicorn's error and access logs go through the masked JSON handlers too.
_ADOPTED = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
#: Libraries that log request bodies or too much at INFO (slack-bolt logs a rejected request's whole body).
_QUIET = {"chromadb": logging.WARNING, "httpx": logging.WARNING, "urllib3": logging.WARNING,
          "alembic": logging.WARNING, "bm25s": logging.WARNING, "slack_bolt": logging.WARNING,
          "slack_sdk": logging.WARNING}
_configured = False
_listener: logging.handlers.QueueListener | None = None


def _clip(value: str) -> str:
    if len(value) <= MAX_VALUE_CHARS:
        return value
    return f"{value[:MAX_VALUE_CHARS]}…[{len(value) - MAX_VALUE_CHARS} characters cut]"


def mask_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: personal data masked in every string value (the message and exception included)."""
    for key, value in list(event.items()):
        if isinstance(value, str) and key not in ("timestamp", "level", "logger"):
            event[key] = mask_personal_data(_clip(value))
    return event


def _context_from_record(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The request id etc. bound where the record was made (the writer thread has no such context)."""
    record = event.get("_record")
    for key, value in (getattr(record, "_madoguchi_context", None) or {}).items():
        event.setdefault(key, value)
    return event


class _NonBlockingQueueHandler(logging.handlers.QueueHandler):
    """Hands records to the writer thread: formatting, masking and file I/O happen there, never on the
    event loop or in a request's thread. The record is not pre-formatted (structlog's formatter needs
    it as it is); the caller's structlog context is attached to it. A full queue drops the record."""

    dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        prepared = copy.copy(record)
        prepared._madoguchi_context = structlog.contextvars.get_contextvars()  # type: ignore[attr-defined]
        return prepared

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            type(self).dropped += 1

    def flush(self) -> None:
        """Wait (a bounded time) until the writer thread has written what was queued so far."""
        pending = self.queue
        deadline = time.monotonic() + 5
        while getattr(pending, "unfinished_tasks", 0) and time.monotonic() < deadline:
            time.sleep(0.002)
        if _listener is not None:
            for handler in _listener.handlers:
                handler.flush()


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
    global _configured, _listener
    if _configured and not force:
        return
    if _listener is not None:
        _listener.stop()
        for old in _listener.handlers:
            old.close()
        _listener = None
    shared: list[Any] = [
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
        processors=[_format_message, _context_from_record, structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, mask_processor,
                    structlog.processors.JSONRenderer(ensure_ascii=False)],
        foreign_pre_chain=[structlog.stdlib.add_logger_name, structlog.processors.add_log_level,
                           structlog.processors.TimeStamper(fmt="iso", utc=True)],
    )
    handlers: list[logging.Handler] = [_CurrentStderrHandler()]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.TimedRotatingFileHandler(
            log_dir / LOG_FILE, when="midnight", utc=True, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
    records: queue.Queue[logging.LogRecord] = queue.Queue(QUEUE_SIZE)
    _listener = logging.handlers.QueueListener(records, *handlers, respect_handler_level=True)
    _listener.start()
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = [_NonBlockingQueueHandler(records)]
    root.setLevel(level.upper())
    for name in _ADOPTED:  # uvicorn's own handlers write unmasked plain text: ours replace them
        adopted = logging.getLogger(name)
        adopted.handlers[:] = []
        adopted.propagate = True
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(quiet)
    _configured = True


@atexit.register
def _stop_listener() -> None:
    """Write what is still queued when the process ends."""
    if _listener is not None:
        _listener.stop()


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
