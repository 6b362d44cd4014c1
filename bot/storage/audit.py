"""The tamper-evident audit trail.

Each `AuditEvent` stores the hash of the previous event and a SHA-256 over its
own fields plus that previous hash, so editing, deleting or inserting a row in
the database breaks the chain at that row, and `verify_chain` names it.
Appends are serialised on every backend, so two events never point to the same previous hash: on
PostgreSQL an advisory transaction lock (held to commit) is taken before the chain head is read; on
SQLite the transaction first takes the database's write lock (a no-op UPDATE: SQLite opens its write
transaction at the first write statement, waiting for the busy timeout), so the head it then reads
cannot change before it commits. Reading the head before holding the lock forked the chain under
ordinary concurrency (20 parallel failed logins).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
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
    else:  # SQLite: hold the write lock before reading the head (a write statement that changes nothing)
        session.execute(text("UPDATE audit_events SET prev_hash = prev_hash WHERE id = -1"))
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
    #: Every event whose link or content does not hold, in id order, with the reason.
    broken: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.first_broken_id is None


LINK_BROKEN = "previous-hash link broken (row removed or inserted, or two events appended on one head)"
CONTENT_BROKEN = "content does not match its hash (row edited)"


def verify_chain(session: Session) -> ChainReport:
    """Walk the chain in id order and report every event whose link or hash does not hold.

    Each link is checked against the stored hash of the row before it, so one edited or removed row is
    reported once, and a fork or a second tampering further on is reported too."""
    prev_hash = GENESIS_HASH
    checked = 0
    broken: list[tuple[int, str]] = []
    for event in session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars():
        reasons = []
        if event.prev_hash != prev_hash:
            reasons.append(LINK_BROKEN)
        if compute_hash(event, event.prev_hash) != event.hash:
            reasons.append(CONTENT_BROKEN)
        if reasons:
            broken.append((event.id, "; ".join(reasons)))
        prev_hash = event.hash
        checked += 1
    first = broken[0] if broken else (None, None)
    return ChainReport(checked, first[0], first[1], broken)
