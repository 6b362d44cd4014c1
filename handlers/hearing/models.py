"""Tables of the hearing sheet: one row per person's answers to one form.

The schema is created by the one Alembic history in `bot/storage/migrations`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.storage.models import Base, Person, utcnow


class FormResponse(Base):
    """One person's answers to one form (the hearing sheet), from first answer to submission.

    Kept per person, not per conversation, so an interview begun on LINE can be
    resumed on the web chat. `state` holds where the person is (the question
    being asked, the answered-question history for 「戻る」, a multi-choice
    selection being built); `answers` holds {question id: value}.
    """

    __tablename__ = "form_responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[str] = mapped_column(String(60), index=True)
    form_version: Mapped[int]
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    channel: Mapped[str] = mapped_column(String(20))
    #: The program it was answered for (None: the default program; see bot/programs.py)
    program: Mapped[str | None] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(20), default="in_progress", index=True)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)

    person: Mapped[Person] = relationship()
