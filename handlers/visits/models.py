"""Tables of expert visits.

The schema is created by the one Alembic history in `bot/storage/migrations`."""

from __future__ import annotations

from datetime import datetime
from datetime import date as date_type
from typing import Any

from sqlalchemy import JSON, Date, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.storage.models import Base, Company, Person, utcnow


class Visit(Base):
    """One planned dispatch of an expert to a company, and what happened on the day.

    Times are naive UTC like every timestamp; `planned_date` is the Japanese
    calendar day. `flags` lists rule findings (location far, date differs,
    over the yearly limit ...); `needs_certificate` means the paper
    支援実施証明兼再発防止誓約書 is required because a step is missing.
    """

    __tablename__ = "visits"

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), index=True)
    institution: Mapped[str | None] = mapped_column(String(200))
    #: The program the dispatch belongs to (None: the default program)
    program: Mapped[str | None] = mapped_column(String(40), index=True)
    planned_date: Mapped[date_type] = mapped_column(Date, index=True)
    planned_start: Mapped[str | None] = mapped_column(String(5))
    planned_end: Mapped[str | None] = mapped_column(String(5))
    status: Mapped[str] = mapped_column(String(20), default="planned", index=True)
    checkin_at: Mapped[datetime | None] = mapped_column(DateTime)
    checkin_lat: Mapped[float | None]
    checkin_lon: Mapped[float | None]
    checkin_no_location_reason: Mapped[str | None] = mapped_column(String(500))
    checkout_at: Mapped[datetime | None] = mapped_column(DateTime)
    checkout_lat: Mapped[float | None]
    checkout_lon: Mapped[float | None]
    checkout_no_location_reason: Mapped[str | None] = mapped_column(String(500))
    face_to_face_minutes: Mapped[int | None]
    accompanied: Mapped[bool | None]
    accompanied_minutes: Mapped[int | None]
    not_accompanied_reason: Mapped[str | None] = mapped_column(String(500))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)
    confirmed_by_person_id: Mapped[int | None] = mapped_column(Integer)
    confirmation_method: Mapped[str | None] = mapped_column(String(20))
    dispute_note: Mapped[str | None] = mapped_column(Text)
    flags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    needs_certificate: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    expert: Mapped[Person] = relationship(foreign_keys=[expert_person_id])
    company: Mapped[Company] = relationship()


class VisitConfirmationEvidence(Base):
    """Who confirmed a visit with a one-time code: the name they typed, their address and browser, and
    whether it looks like the expert's own side (an address or browser the expert used recently)."""

    __tablename__ = "visit_confirmation_evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(Integer)
    typed_name: Mapped[str | None] = mapped_column(String(200))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    flagged: Mapped[bool] = mapped_column(default=False)
    flag_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
