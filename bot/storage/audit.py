"""The tamper-evident audit trail.

Each `AuditEvent` stores the hash of the previous event and a SHA-256 over its
own fields plus that previous hash, so editing, deleting or inserting a row in
the database breaks the chain at that row, and `verify_chain` names it.
On PostgreSQL an advisory transaction lock serialises appends across workers;
SQLite serialises writers by itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bot.storage.models import AuditEvent, utcnow

GENESIS_HASH = "0" * 64
_PG_AUDIT_LOCK_KEY = 7_011_2024  # any constant; names the audit chain's advisory lock


def _canonical(event: AuditEvent) -> str:
    payload = {
        "created_at": event.created_at.isoformat(timespec="microseconds"),
        "actor": event.actor_person_id,
        "action": event.action,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "data": event.data or {},
    }
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def compute_hash(event: AuditEvent, prev_hash: str) -> str:
    return hashlib.sha256((prev_hash + "|" + _canonical(event)).encode("utf-8")).hexdigest()


def record(
    session: Session,
    action: str,
    *,
    actor_person_id: int | None = None,
    subject_type: str | None = None,
    subject_id: Any = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction (so it commits with the change it records)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK_KEY})
    last = session.execute(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)).scalar()
    prev_hash = last or GENESIS_HASH
    event = AuditEvent(
        created_at=utcnow(),
        actor_person_id=actor_person_id,
        action=action,
        subject_type=subject_type,
        subject_id=None if subject_id is None else str(subject_id),
        data=json.loads(json.dumps(data or {}, ensure_ascii=False, default=str)),
        prev_hash=prev_hash,
    )
    event.hash = compute_hash(event, prev_hash)
    session.add(event)
    session.flush()
    return event


@dataclass
class ChainReport:
    checked: int
    first_broken_id: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.first_broken_id is None


def verify_chain(session: Session) -> ChainReport:
    """Walk the chain in id order; report the first event whose link or hash does not hold."""
    prev_hash = GENESIS_HASH
    checked = 0
    for event in session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars():
        if event.prev_hash != prev_hash:
            return ChainReport(checked, event.id, "previous-hash link broken (row removed or inserted)")
        if compute_hash(event, prev_hash) != event.hash:
            return ChainReport(checked, event.id, "content does not match its hash (row edited)")
        prev_hash = event.hash
        checked += 1
    return ChainReport(checked, None, None)
