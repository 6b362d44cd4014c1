"""The long-lived objects one process shares: settings, database, knowledge base.

Built once per process (`Services.create`) and handed to the engine and the
web app, so the embedding model and indexes are loaded once, not per message.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.settings import Settings, get_settings
from bot.storage.db import Database

if TYPE_CHECKING:
    from handlers.hearing.schema import FormCatalog
    from knowledge.service import KnowledgeBase


@dataclass
class Services:
    settings: Settings
    db: Database
    _knowledge: KnowledgeBase | None = field(default=None, repr=False)
    _forms: FormCatalog | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def create(cls, settings: Settings | None = None, *, migrate: bool = True) -> Services:
        settings = settings or get_settings()
        settings.ensure_dirs()
        db = Database(settings.resolved_database_url)
        if migrate:
            db.migrate()
        return cls(settings=settings, db=db)

    @property
    def knowledge(self) -> KnowledgeBase:
        """The knowledge base, opened on first use (loads the index and the embedder once)."""
        if self._knowledge is None:
            with self._lock:
                if self._knowledge is None:
                    from knowledge.service import KnowledgeBase

                    self._knowledge = KnowledgeBase.open(self.settings, self.db)
        return self._knowledge

    @property
    def forms(self) -> FormCatalog:
        """Every questionnaire definition (bundled plus MADOGUCHI_FORMS_DIRS), validated on first use."""
        if self._forms is None:
            from handlers.hearing.schema import load_catalog

            self._forms = load_catalog(self.settings.forms_dirs)
        return self._forms

    def knowledge_changed(self) -> None:
        """Tell an already-open knowledge base to reload its snapshot (after an ingest)."""
        if self._knowledge is not None:
            self._knowledge.refresh(force=True)

    def close(self) -> None:
        self.db.dispose()
