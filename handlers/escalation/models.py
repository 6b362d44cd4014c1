"""Tables of escalation: staff accounts, tickets and their messages, saved replies.

The schema is created by the one Alembic history in `bot/storage/migrations`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.storage.models import Base, Person, utcnow


class StaffAccount(Base):
    """A call-center or secretariat member: logs into the console (argon2 password) and/or acts in Slack."""

    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    slack_user_id: Mapped[str | None] = mapped_column(String(40), unique=True)
    role: Mapped[str] = mapped_column(String(20), default="staff")  # staff | admin
    #: Programs this member works for (None or empty: the default program); admins see every program.
    programs: Mapped[list[Any] | None] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)


class Ticket(Base):
    """A question handed to call-center staff, with everything they need to answer it.

    open -> claimed -> answered -> resolved, or closed without an answer.
    """

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    channel: Mapped[str] = mapped_column(String(20))
    #: The program of the conversation it came from (None: the default program)
    program: Mapped[str | None] = mapped_column(String(40), index=True)
    reason: Mapped[str] = mapped_column(String(30))  # asked_human | not_confident | not_helpful | rule
    question: Mapped[str] = mapped_column(Text, default="")
    role: Mapped[str] = mapped_column(String(20))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"), index=True)
    transcript: Mapped[list[Any]] = mapped_column(JSON, default=list)
    sources: Mapped[list[Any]] = mapped_column(JSON, default=list)
    slack_ts: Mapped[str | None] = mapped_column(String(40), index=True)
    overdue: Mapped[bool] = mapped_column(default=False)
    satisfaction: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)

    person: Mapped[Person] = relationship()
    assignee: Mapped[StaffAccount | None] = relationship()
    messages: Mapped[list[TicketMessage]] = relationship(back_populates="ticket", order_by="TicketMessage.id")


class TicketMessage(Base):
    """One message in a ticket's thread: from the user, from staff (Slack or console), or the system."""

    __tablename__ = "ticket_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    author: Mapped[str] = mapped_column(String(10))  # user | staff | system
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"))
    via: Mapped[str] = mapped_column(String(20))  # the user's channel, "slack" or "console"
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    platform_id: Mapped[str | None] = mapped_column(String(100), unique=True)  # Slack event id: no double relay

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
    staff: Mapped[StaffAccount | None] = relationship()


class SavedReply(Base):
    """A canned answer staff insert into the reply box; managed on the console's 定型文 page (titles are unique)."""

    __tablename__ = "saved_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80), unique=True)
    text: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
