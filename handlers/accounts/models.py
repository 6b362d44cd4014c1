"""Tables of account linking: the one-time link codes.

The schema is created by the one Alembic history in `bot/storage/migrations`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base, utcnow


class LinkCode(Base):
    """A one-time code staff hand out: links a chat account to a registered person, or lets an
    SME without an account confirm one visit. Only the SHA-256 of the code is stored."""

    __tablename__ = "link_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(20))  # "link" | "visit_confirm"
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
    used_by_person_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
