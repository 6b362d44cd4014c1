"""LINE: webhook with `X-Line-Signature` verified by line-bot-sdk, quick replies, reply tokens then push.

A reply token is good for one call, for about a minute: the first outbox
row of a turn uses it while it is fresh (`REPLY_TOKEN_TTL_S`); anything
later, or a rejected token, goes out as a push message. Quick replies take at
most 13 items, so longer option lists show 12 and a 「次へ」 item that pages
through the stored reply. Redelivered events (`deliveryContext.isRedelivery`)
keep their `webhookEventId`, which the engine de-duplicates.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse
from linebot.v3 import WebhookParser
from linebot.v3.exceptions import InvalidSignatureError
from linebot.v3.messaging import (
    ApiClient,
    Configuration,
    MessagingApi,
    PostbackAction,
    PushMessageRequest,
    QuickReply,
    QuickReplyItem,
    ReplyMessageRequest,
    TextMessage,
)
from linebot.v3.messaging.exceptions import ApiException
from linebot.v3.webhooks import (
    Event,
    FollowEvent,
    LocationMessageContent,
    MessageEvent,
    PostbackEvent,
    TextMessageContent,
)

from bot.messages import Attachment, InboundMessage, Location, Option, Reply
from bot.outbox import queue, replies_of
from bot.services import Services
from bot.settings import Settings
from bot.storage.models import OutboundMessage
from integrations.channels.inbox import WebhookInbox, event_key
from integrations.channels.delivery import (
    ChannelRuntime,
    PermanentSendError,
    TransientSendError,
    already_sent,
    mark_progress,
    platform_messages,
)

log = logging.getLogger(__name__)

CHANNEL = "line"
TEXT_LIMIT = 5000
MESSAGES_PER_CALL = 5
QUICK_REPLY_MAX = 13
LABEL_MAX = 20
REPLY_TOKEN_TTL_S = 50
PAGE_PREFIX = "line:page:"


def is_configured(settings: Settings) -> bool:
    return bool(settings.line_channel_secret and settings.line_channel_access_token)


def quick_reply(options: list[Option], row_id: int, page: int = 0) -> QuickReply | None:
    """At most 13 items: 12 options and 「次へ」 when there are more (a postback the adapter answers)."""
    if not options:
        return None
    per_page = QUICK_REPLY_MAX - 1
    start = page * per_page
    shown = options[start: start + (QUICK_REPLY_MAX if len(options) - start <= QUICK_REPLY_MAX else per_page)]
    items = [QuickReplyItem(action=PostbackAction(label=_label(o.label), data=o.value[:300], displayText=o.label))
             for o in shown]
    if start + len(shown) < len(options):
        items.append(QuickReplyItem(action=PostbackAction(label="次へ ▶", data=f"{PAGE_PREFIX}{row_id}:{page + 1}",
                                                          displayText="次の選択肢")))
    return QuickReply(items=items)


def _label(text: str) -> str:
    return text if len(text) <= LABEL_MAX else text[: LABEL_MAX - 1] + "…"


class LineSender:
    channel = CHANNEL

    def __init__(self, settings: Settings) -> None:
        assert settings.line_channel_access_token is not None
        self.configuration = Configuration(host=settings.line_api_url,
                                           access_token=settings.line_channel_access_token.get_secret_value())

    def send(self, row: OutboundMessage, replies: list[Reply]) -> None:
        context = (row.payload or {}).get("context") or {}
        page = int(context.get("page", 0))
        messages = platform_messages(replies, TEXT_LIMIT)
        start = already_sent(row)
        token = context.get("reply_token")
        fresh = token and start == 0 and time.time() - float(context.get("received_at", 0)) < REPLY_TOKEN_TTL_S
        while start < len(messages):
            batch = messages[start: start + MESSAGES_PER_CALL]
            line_messages = [TextMessage(text=text, quickReply=quick_reply(reply.options, row.id, page) if reply else None)
                             for text, reply in batch]
            if fresh:
                fresh = False
                try:
                    self._call(lambda api: api.reply_message(ReplyMessageRequest(replyToken=token,
                                                                                 messages=line_messages)))
                except PermanentSendError:  # token expired or used: push instead
                    log.info("reply token rejected; pushing", extra={"row": row.id})
                    continue
            else:
                self._call(lambda api: api.push_message(PushMessageRequest(to=row.external_user_id,
                                                                           messages=line_messages)))
            start += len(batch)
            mark_progress(row, start)

    def _call(self, call: Any) -> None:
        with ApiClient(self.configuration) as client:
            try:
                call(MessagingApi(client))
            except ApiException as error:
                status = error.status or 0
                if status == 429 or status >= 500:
                    retry_after = (error.headers or {}).get("Retry-After")
                    raise TransientSendError(f"line {status}", float(retry_after) if retry_after else None) from error
                raise PermanentSendError(f"line {status}: {error.body}") from error
            except OSError as error:
                raise TransientSendError(f"line network: {error}") from error


def to_inbound(event: Any) -> InboundMessage | None:
    user_id = getattr(event.source, "user_id", None)
    if not user_id:
        return None  # group/room events without a user: not a conversation we hold
    context = {"reply_token": getattr(event, "reply_token", None), "received_at": time.time()}
    common: dict[str, Any] = {"channel": CHANNEL, "external_user_id": user_id,
                              "platform_message_id": event.webhook_event_id, "reply_context": context}
    if isinstance(event, MessageEvent):
        content = event.message
        if isinstance(content, TextMessageContent):
            return InboundMessage(text=content.text, **common)
        if isinstance(content, LocationMessageContent):
            return InboundMessage(location=Location(lat=content.latitude, lon=content.longitude), **common)
        return InboundMessage(attachments=[Attachment(kind=str(content.type))], **common)
    if isinstance(event, PostbackEvent):
        return InboundMessage(choice=event.postback.data, **common)
    if isinstance(event, FollowEvent):
        return InboundMessage(text="メニュー", **common)
    return None


def next_page(services: Services, event: Any) -> None:
    """「次へ」 in a quick reply: queue the next page of the stored options (no engine round trip)."""
    _, _, rest = event.postback.data.partition(PAGE_PREFIX)
    row_id, _, page = rest.partition(":")
    with services.db.session() as session:
        row = session.get(OutboundMessage, int(row_id)) if row_id.isdigit() else None
        if row is None or row.external_user_id != event.source.user_id:
            return
        last = replies_of(row)[-1]
        queue(session, row.person_id, CHANNEL, row.external_user_id,
              [Reply(text="選択肢の続きです。", options=last.options)],
              {"reply_token": event.reply_token, "received_at": time.time(), "page": int(page or 1)})


def mount(api: FastAPI, settings: Settings, services: Services, runtime: ChannelRuntime) -> None:
    assert settings.line_channel_secret is not None
    parser = WebhookParser(settings.line_channel_secret.get_secret_value())

    def process(events: list[Any]) -> None:
        for event in events:
            if isinstance(event, PostbackEvent) and event.postback.data.startswith(PAGE_PREFIX):
                next_page(services, event)
                runtime.worker.kick()
                continue
            message = to_inbound(event)
            if message is not None:
                runtime.receive(message)

    def process_stored(raw: dict[str, Any]) -> None:
        try:
            event = Event.from_dict(raw)
        except ValueError:
            return  # an event type the SDK does not know: nothing to answer
        process([event])

    inbox = WebhookInbox(services, CHANNEL, process_stored)
    runtime.inboxes.append(inbox)

    @api.post("/line/webhook", include_in_schema=False)
    async def line_webhook(request: Request, background: BackgroundTasks) -> JSONResponse:
        body = (await request.body()).decode("utf-8", errors="replace")
        signature = request.headers.get("X-Line-Signature", "")
        try:
            parser.parse(body, signature)
            raw = json.loads(body)["events"]
        except InvalidSignatureError:
            return JSONResponse({"error": "invalid_signature", "message": "署名が正しくありません。"}, status_code=401)
        except Exception:  # signed but not a webhook body we can read
            return JSONResponse({"error": "invalid_body", "message": "内容を読み取れません。"}, status_code=400)
        # Stored (committed) before LINE gets its 200: LINE never resends an acknowledged event.
        ids = await inbox.accept([(event_key(e, "webhookEventId"), e) for e in raw if isinstance(e, dict)])
        background.add_task(inbox.process_ids, ids)
        return JSONResponse({"ok": True})
