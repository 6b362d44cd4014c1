"""Tell the secretariat about something: the staff-notification outbox.

Capabilities call `notify_staff` inside their own transaction, so the
notification exists exactly when the business change does. Staff channels
(Slack, the web console) read undelivered rows and mark them delivered;
until one is configured the rows are visible through the staff API and the
audit trail.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage import audit
from bot.storage.models import StaffNotification, utcnow


def notify_staff(
    session: Session,
    kind: str,
    title: str,
    body: str = "",
    *,
    subject_type: str | None = None,
    subject_id: str | int | None = None,
    data: dict[str, Any] | None = None,
    actor_person_id: int | None = None,
) -> StaffNotification:
    notification = StaffNotification(
        kind=kind, title=title, body=body, subject_type=subject_type,
        subject_id=None if subject_id is None else str(subject_id), data=data or {},
    )
    session.add(notification)
    session.flush()
    audit.record(session, "staff.notified", actor_person_id=actor_person_id, subject_type="staff_notification",
                 subject_id=notification.id, data={"kind": kind, "subject_type": subject_type,
                                                   "subject_id": notification.subject_id})
    return notification


def pending_notifications(session: Session, limit: int = 100) -> list[StaffNotification]:
    return list(session.execute(
        select(StaffNotification).where(StaffNotification.delivered_at.is_(None))
        .order_by(StaffNotification.id).limit(limit)
    ).scalars())


def mark_delivered(session: Session, notification: StaffNotification) -> None:
    notification.delivered_at = utcnow()
    notification.attempts += 1
