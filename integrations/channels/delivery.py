"""Getting replies out to the platforms: splitting, retrying, and the outbox worker.

Every message for Slack, Telegram or LINE is a row in the outbox before any
network call (see `bot.outbox`). The worker here drains due rows per
channel. One attempt retries a 429 or 5xx a few times at once with tenacity,
waiting what the platform's Retry-After asks (or backing off); if the
platform still refuses, the row stays pending with its next attempt time and
the error, so a message is never dropped silently. Adapters only implement
`ChannelSender.send`, turning a `Reply` into the platform's API call.
"""

from __future__ import annotations

from functools import partial
import logging
import re
import threading
from collections.abc import Callable
from typing import Any, Protocol

from tenacity import RetryCallState, retry, retry_if_exception_type, stop_after_attempt

from bot.messages import Reply
from bot.outbox import due, lease, mark_failed_attempt, mark_sent, replies_of
from bot.services import Services
from bot.storage.models import OutboundMessage
import time

log = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"(?<=[。．！？!?\n])")
MAX_IMMEDIATE_TRIES = 3
MAX_WAIT_S = 30.0


class TransientSendError(Exception):
    """The platform said later (429, 5xx, network): retry, after `retry_after` seconds if it said so."""
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentSendError(Exception):
    """The platform refused for good (blocked by the user, bad request): recorded, not retried at once."""


class ChannelSender(Protocol):
    channel: str

    def send(self, row: OutboundMessage, replies: list[Reply]) -> None:
        """Deliver the row's replies in order; raise TransientSendError / PermanentSendError on failure.

        Call `mark_progress(row, n)` after each platform message that went out, so
        a retry does not send the first pieces twice."""


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut after a sentence end (。！？ or a line break) when
    possible, never inside a sentence unless one sentence alone is longer than the limit."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for sentence in filter(None, _SENTENCE_END.split(text)):
        while len(sentence) > limit:  # one sentence longer than a whole message: hard cut
            if current:
                pieces.append(current)
                current = ""
            pieces.append(sentence[:limit])
            sentence = sentence[limit:]
        if len(current) + len(sentence) > limit:
            pieces.append(current)
            current = ""
        current += sentence
    if current:
        pieces.append(current)
    return [p.strip("\n") or p for p in pieces]


def platform_messages(replies: list[Reply], limit: int,
                      render: Callable[[str], str] | None = None) -> list[tuple[str, Reply | None]]:
    """The replies as platform-sized texts; the piece that ends a reply carries it (for its buttons).
    `render` is the platform's own form of the text (Slack's escaped mrkdwn), applied before it is cut so
    every piece keeps within `limit` as the platform counts it."""
    messages: list[tuple[str, Reply | None]] = []
    for reply in replies:
        text = reply.text
        if reply.links:
            text += "".join(f"\n{link.label}: {link.url}" for link in reply.links)
        pieces = split_text(render(text) if render else text, limit)
        messages += [(piece, reply if i == len(pieces) - 1 else None) for i, piece in enumerate(pieces)]
    return messages


def already_sent(row: OutboundMessage) -> int:
    """How many platform messages of this row went out in earlier attempts."""
    return int((row.payload or {}).get("sent_parts", 0))


def mark_progress(row: OutboundMessage, sent_parts: int) -> None:
    row.payload = {**(row.payload or {}), "sent_parts": sent_parts}


class ChannelRuntime:
    """What a platform adapter needs: hand a message to the engine (replies go to the outbox in the
    same transaction) and wake the delivery worker."""

    def __init__(self, engine: Any, worker: DeliveryWorker) -> None:
        self.engine = engine
        self.worker = worker
        self.inboxes: list[Any] = []  # stored webhook events (integrations.channels.inbox), replayed on start

    def receive(self, message: Any) -> Any:
        outcome = self.engine.process(message, outbox=True)
        self.worker.kick()
        return outcome


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, TransientSendError) and error.retry_after is not None:
        return min(float(error.retry_after), MAX_WAIT_S)
    return min(0.5 * 2 ** (state.attempt_number - 1), MAX_WAIT_S)


def send_with_retries(send: Callable[[], Any]) -> Any:
    """Call `send`, retrying TransientSendError up to MAX_IMMEDIATE_TRIES times (Retry-After respected)."""
    return retry(retry=retry_if_exception_type(TransientSendError), wait=_wait,
                 stop=stop_after_attempt(MAX_IMMEDIATE_TRIES), reraise=True)(send)()


def deliver_due(services: Services, sender: ChannelSender, limit: int = 50) -> int:
    """Send the channel's due outbox rows; returns how many were sent.

    Rows are first leased (their next attempt pushed `LEASE_S` ahead) in a short
    transaction, so another worker skips them and no lock is held while the
    platform is called; each outcome is then committed on its own.
    """
    with services.db.session() as session:
        leased = [(row.id, replies_of(row)) for row in lease(session, due(session, sender.channel, limit))]
    sent = 0
    for row_id, replies in leased:
        with services.db.session() as session:
            row = session.get(OutboundMessage, row_id)
            assert row is not None
            try:
                send_with_retries(partial(sender.send, row, replies))
            except TransientSendError as error:
                log.warning("delivery postponed", extra={"channel": sender.channel, "row": row_id})
                mark_failed_attempt(row, str(error), error.retry_after)
            except PermanentSendError as error:
                log.error("delivery refused", extra={"channel": sender.channel, "row": row_id})
                mark_failed_attempt(row, f"permanent: {error}")
            except Exception as error:  # an unexpected SDK error must not stop the other rows
                log.exception("delivery failed", extra={"channel": sender.channel, "row": row_id})
                mark_failed_attempt(row, repr(error))
            else:
                mark_sent(row)
                sent += 1
    return sent


class Once:
    """Run `task` the first time the worker loop runs (work left over from before a restart)."""
    def __init__(self, task: Callable[[], int]) -> None:
        self.task = task
        self.done = False

    def __call__(self) -> int:
        if self.done:
            return 0
        self.done = True
        return self.task()


class Every:
    """Run `task` at most once per `seconds` (the worker loop wakes far more often)."""
    def __init__(self, seconds: float, task: Callable[[], int]) -> None:
        self.seconds = seconds
        self.task = task
        # None, not 0.0: the monotonic clock counts from boot, so on a machine up less than `seconds` a
        # 0.0 start would hold the first run back until the clock passed `seconds`.
        self._last: float | None = None

    def __call__(self) -> int:
        if self._last is not None and time.monotonic() - self._last < self.seconds:
            return 0
        self._last = time.monotonic()
        return self.task()


class DeliveryWorker:
    """A background thread draining the outbox of every live platform channel.

    `kick()` wakes it right after a webhook queued replies; otherwise it looks
    every `interval` seconds (for retries, and for messages other flows queued).
    """

    def __init__(self, services: Services, senders: list[ChannelSender], interval: float = 2.0,
                 tasks: list[Callable[[], int]] | None = None) -> None:
        self.services = services
        self.senders = senders
        self.tasks = tasks or []  # other periodic deliveries (the Slack staff channel, the overdue check)
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if (self.senders or self.tasks) and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="madoguchi-delivery", daemon=True)
            self._thread.start()

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def run_once(self) -> int:
        done = sum(deliver_due(self.services, sender) for sender in self.senders)
        for task in self.tasks:
            try:
                done += task()
            except Exception:
                log.exception("delivery task failed")
        return done

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("delivery loop error")
            self._wake.wait(self.interval)
            self._wake.clear()
