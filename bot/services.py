"""The long-lived objects one process shares: settings, database, knowledge base, the capabilities.

Built once per process (`Services.create`) and handed to the engine and the
web app, so the embedding model and indexes are loaded once, not per message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from bot.settings import Settings, get_settings
from bot.storage.db import Database
from bot.logging_setup import configure_logging
from bot.capability import load_capabilities

if TYPE_CHECKING:
    from bot.capability import Capability
    from knowledge.service import KnowledgeBase

T = TypeVar("T")


@dataclass
class Services:
    settings: Settings
    db: Database
    _knowledge: KnowledgeBase | None = field(default=None, repr=False)
    _capabilities: tuple[Capability, ...] | None = field(default=None, repr=False)
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @classmethod
    def create(cls, settings: Settings | None = None, *, migrate: bool = True) -> Services:
        settings = settings or get_settings()
        settings.ensure_dirs()
        db = Database(settings.resolved_database_url, threads=settings.web.http_threads)
        if migrate:
            db.migrate(settings.data_dir)
        return cls(settings=settings, db=db)

    @property
    def knowledge(self) -> KnowledgeBase:
        """The knowledge base, opened on first use (loads the index and the embedder once)."""
        if self._knowledge is None:
            with self._lock:
                if self._knowledge is None:
                    from knowledge.service import KnowledgeBase  # heavy: loads chromadb and the embedder

                    self._knowledge = KnowledgeBase.open(self.settings, self.db)
        return self._knowledge

    @property
    def capabilities(self) -> tuple[Capability, ...]:
        """The installed capabilities, in order (`Settings.capabilities` names the list)."""
        if self._capabilities is None:

            with self._lock:
                if self._capabilities is None:
                    self._capabilities = load_capabilities(self.settings.capabilities)
        return self._capabilities

    def install(self, capability: Capability) -> None:
        """Add a capability after the configured ones (tests, or a deployment's own extension)."""
        self._capabilities = (*self.capabilities, capability)

    def shared(self, key: str, build: Callable[[], T]) -> T:
        """A capability's process-wide object (a parsed form catalog ...), built once on first use."""
        if key not in self._shared:
            with self._lock:
                if key not in self._shared:
                    self._shared[key] = build()
        return self._shared[key]  # type: ignore[no-any-return]

    def check(self) -> None:
        """Every capability's startup check (raises `ConfigurationError`): a broken form stops startup."""
        for capability in self.capabilities:
            if capability.check is not None:
                capability.check(self)

    def knowledge_changed(self) -> None:
        """Tell an already-open knowledge base to reload its snapshot (after an ingest)."""
        if self._knowledge is not None:
            self._knowledge.refresh(force=True)

    def close(self) -> None:
        self.db.dispose()


def open_services(settings: Settings | None = None) -> Services:
    """Services for a command-line process: logging configured, schema migrated, capabilities checked.

    Raises `bot.capability.ConfigurationError` when a capability's configuration is broken.
    """

    settings = settings or get_settings()
    configure_logging(settings.log.level, settings.resolved_log_dir)
    services = Services.create(settings)
    services.check()
    return services
