"""Channel-agnostic message types: what adapters build and what handlers return.

Adapters translate platform events into `InboundMessage` and render `Reply`
with the platform's native elements; nothing else crosses that boundary.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from datetime import UTC

from pydantic import BaseModel, Field, field_validator

from bot.storage.models import utcnow


class Location(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Attachment(BaseModel):
    kind: str  # "image" | "file" | ...
    url: str | None = None
    name: str | None = None


class InboundMessage(BaseModel):
    """One thing a user sent: text, a chosen option, a location, attachments."""

    channel: str
    external_user_id: str
    text: str | None = None
    choice: str | None = None
    location: Location | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    platform_message_id: str | None = None
    timestamp: datetime = Field(default_factory=utcnow)
    display_name: str | None = None
    program: str | None = Field(
        default=None, description="The program of the entry point (/p/<id>/, its LINE channel ...); None = general.")
    reply_context: dict[str, Any] = Field(
        default_factory=dict,
        description="Where the platform wants the answer (LINE reply token, Slack channel and thread, Telegram chat).",
    )
    client: dict[str, str] = Field(
        default_factory=dict,
        description="Web chat only: the client's address and browser ({ip, user_agent}), for abuse limits and "
                    "the evidence kept with a visit confirmation.",
    )

    @field_validator("timestamp")
    @classmethod
    def _naive_utc(cls, value: datetime) -> datetime:
        """Platforms send aware times; everything stored is naive UTC (see bot.storage.models.utcnow)."""
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


class Option(BaseModel):
    """A quick-reply button: what the user sees and the value sent back."""

    label: str
    value: str


class Link(BaseModel):
    label: str
    url: str


class Reply(BaseModel):
    """One message the bot sends back."""

    text: str
    options: list[Option] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict, description="Not shown: citations, confidence.")
    free_input: bool = Field(
        default=False,
        description="A typed answer is expected (a number, a date ...): clients must not read digits as option picks.",
    )
