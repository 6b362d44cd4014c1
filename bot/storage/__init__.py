"""Durable state: SQLAlchemy models, the database handle, migrations and the audit chain."""

from bot.storage.db import Database
from bot.storage.models import (
    AuditEvent,
    Base,
    ChannelIdentity,
    Company,
    Conversation,
    KnowledgeChunk,
    KnowledgeSource,
    Message,
    Person,
    Role,
)

__all__ = [
    "AuditEvent",
    "Base",
    "ChannelIdentity",
    "Company",
    "Conversation",
    "Database",
    "KnowledgeChunk",
    "KnowledgeSource",
    "Message",
    "Person",
    "Role",
]
