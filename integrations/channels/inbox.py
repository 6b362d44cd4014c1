"""Webhook events are stored before the platform gets its 200, and processed from the store.

LINE does not resend an event it got a 200 for: an event acknowledged first and processed in the
background was lost if the process died in between (20 events, kill -9 after the last 200: 9 kept).
Now the route stores each event (one row per platform event id, so a redelivery is stored once) in its
own committed transaction, answers 200, and processes the stored rows after the response; a row is
marked processed when the engine has it. On start, rows stored but not processed are processed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from bot.security.models import WebhookEvent
from bot.services import Services
from bot.storage.models import utcnow

log = logging.getLogger(__name__)


def event_key(event: dict[str, Any], field: str) -> str:
    value = event.get(field)
    if value is not None:
        return str(value)[:200]
    return hashlib.sha256(json.dumps(event, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class WebhookInbox:
    def __init__(self, services: Services, channel: str, process: Callable[[dict[str, Any]], None]) -> None:
        self.services = services
        self.channel = channel
        self.process = process

    def store(self, events: list[tuple[str, dict[str, Any]]]) -> list[int]:
        """Store each (key, event) not stored yet; returns the ids of the rows to process now."""
        ids = []
        for key, body in events:
            try:
                with self.services.db.session() as session:
                    row = WebhookEvent(channel=self.channel, event_key=key, body=body)
                    session.add(row)
                    session.flush()
                    ids.append(row.id)
            except IntegrityError:  # a redelivery of an event already stored: processed from its first row
                continue
        return ids

    async def accept(self, events: list[tuple[str, dict[str, Any]]]) -> list[int]:
        """`store` off the event loop (the route awaits it before answering 200)."""
        return await run_in_threadpool(self.store, events)

    def process_ids(self, ids: list[int]) -> int:
        done = 0
        for row_id in ids:
            with self.services.db.session() as session:
                row = session.get(WebhookEvent, row_id)
                if row is None or row.processed_at is not None:
                    continue
                body = dict(row.body or {})
            try:
                self.process(body)
            except Exception:  # one bad event must not block the others; the engine logs its own errors
                log.exception("webhook event failed", extra={"channel": self.channel, "row": row_id})
            with self.services.db.session() as session:
                row = session.get(WebhookEvent, row_id)
                if row is not None:
                    row.processed_at = utcnow()
            done += 1
        return done

    def replay(self) -> int:
        """Process what was stored but not processed (after a crash or a kill)."""
        with self.services.db.session() as session:
            ids = list(session.execute(select(WebhookEvent.id).where(
                WebhookEvent.channel == self.channel, WebhookEvent.processed_at.is_(None))
                .order_by(WebhookEvent.id)).scalars())
        if ids:
            log.warning("processing stored webhook events", extra={"channel": self.channel, "count": len(ids)})
        return self.process_ids(ids)
