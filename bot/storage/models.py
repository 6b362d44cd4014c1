"""SQLAlchemy 2 models: the durable state of madoguchi.

The schema itself is created and changed only by the Alembic migrations in
`bot/storage/migrations`; these classes are the Python view of it.
Timestamps are naive UTC everywhere so SQLite and PostgreSQL agree, which the
audit chain's hashes depend on.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Naive UTC with microseconds: the one timestamp format stored."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Role(enum.StrEnum):
    """Who a person is to the program; decides what they may do."""

    APPLICANT = "applicant"
    EXPERT = "expert"
    INSTITUTION = "institution"
    STAFF = "staff"
    ADMIN = "admin"


class Company(Base):
    """An SME (中小企業) known to the program."""

    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    corporate_number: Mapped[str | None] = mapped_column(String(13), unique=True)
    address: Mapped[str | None] = mapped_column(String(300))
    industry: Mapped[str | None] = mapped_column(String(100))
    employees: Mapped[int | None] = mapped_column(Integer)
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Person(Base):
    """Anyone who talks to the bot or works behind it."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String(20), default=Role.APPLICANT.value)
    display_name: Mapped[str | None] = mapped_column(String(200))
    organisation: Mapped[str | None] = mapped_column(String(200))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    locale: Mapped[str] = mapped_column(String(5), default="ja")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    identities: Mapped[list[ChannelIdentity]] = relationship(back_populates="person")
    company: Mapped[Company | None] = relationship()


class ChannelIdentity(Base):
    """(channel, external user id) -> person: how a platform account is recognised."""

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel", "external_user_id", name="uq_identity_channel_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    external_user_id: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str | None] = mapped_column(String(200))
    verified: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    person: Mapped[Person] = relationship(back_populates="identities")


class Conversation(Base):
    """One person's thread on one channel, with the flow they are in (if any)."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("person_id", "channel", "program", name="uq_conversation_person_channel_program"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    #: The program of the entry point ("" = a general one: the user may ask about any program).
    program: Mapped[str] = mapped_column(String(40), default="", server_default="")
    active_flow: Mapped[str | None] = mapped_column(String(50))
    flow_state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    person: Mapped[Person] = relationship()


class Message(Base):
    """Every inbound and outbound message; the platform id de-duplicates redeliveries."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "direction", "platform_message_id", name="uq_message_platform_id"),
        Index("ix_messages_conversation_direction_created", "conversation_id", "direction", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    direction: Mapped[str] = mapped_column(String(3))  # "in" | "out"
    channel: Mapped[str] = mapped_column(String(20))
    platform_message_id: Mapped[str | None] = mapped_column(String(200))
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    text: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    handler: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class AuditEvent(Base):
    """Append-only trail; each row's hash covers the previous row's hash."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor_person_id: Mapped[int | None] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(80), index=True)
    subject_type: Mapped[str | None] = mapped_column(String(50))
    subject_id: Mapped[str | None] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class KnowledgeSource(Base):
    """One ingested file; its content hash makes re-ingest incremental."""

    __tablename__ = "knowledge_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String(1000), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    title: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(20))
    content_hash: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(default=1)
    chunk_count: Mapped[int] = mapped_column(default=0)
    ingested_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    chunks: Mapped[list[KnowledgeChunk]] = relationship(
        back_populates="source", cascade="all, delete-orphan", order_by="KnowledgeChunk.ordinal"
    )


class KnowledgeChunk(Base):
    """A citable piece of a source; its vector lives in Chroma under the same id."""

    __tablename__ = "knowledge_chunks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("knowledge_sources.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int]
    kind: Mapped[str] = mapped_column(String(10), default="text")  # "text" | "faq"
    section: Mapped[str] = mapped_column(String(1000), default="")
    page: Mapped[int | None]
    text: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)  # curated answer of a FAQ entry
    tokens: Mapped[str] = mapped_column(Text, default="")  # Sudachi normalized forms, space-joined

    source: Mapped[KnowledgeSource] = relationship(back_populates="chunks")


class EmbeddingCache(Base):
    """Vectors by (model, text hash) so re-ingest and `--reset` do not re-embed."""

    __tablename__ = "embedding_cache"

    model: Mapped[str] = mapped_column(String(100), primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class StaffNotification(Base):
    """Something the secretariat must see (a submitted hearing sheet, a ticket ...): an outbox.

    Written in the same transaction as the business change; staff channels
    (Slack, the console) deliver it and set `delivered_at`, so nothing is lost
    when a channel is down.
    """

    __tablename__ = "staff_notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    subject_type: Mapped[str | None] = mapped_column(String(50))
    subject_id: Mapped[str | None] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(default=0)


class OutboundMessage(Base):
    """A message to a person who did not just write to us (an SME asked to confirm, a staff answer
    relayed): kept until the person's channel has delivered it, retried, never dropped silently."""

    __tablename__ = "outbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20), index=True)
    external_user_id: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"replies": [...], "context": {...}}
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)


class FaqCandidate(Base):
    """A staff answer proposed for the knowledge base; published after review."""

    __tablename__ = "faq_candidates"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)  # pending|published|rejected
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"))
    reviewed_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: The program whose users it answers (its ticket's, or chosen in the console; None: the default program's)
    program: Mapped[str | None] = mapped_column(String(40), index=True)
    #: Marked by an admin to answer in every program
    shared: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
