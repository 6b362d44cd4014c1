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
    URIAction,
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

from bot.messages import Attachment, InboundMessage, Link, Location, Option, Reply
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
from bot.programs import ProgramError, load_programs

log = logging.getLogger(__name__)

CHANNEL = "line"
TEXT_LIMIT = 5000
MESSAGES_PER_CALL = 5
QUICK_REPLY_MAX = 13
LABEL_MAX = 20
REPLY_TOKEN_TTL_S = 50
PAGE_PREFIX = "line:page:"


def is_configured(settings: Settings) -> bool:
    """The general LINE account (LINE_CHANNEL_*) or any program's own account has credentials."""
    return bool(settings.line.channel_secret and settings.line.channel_access_token) or bool(program_accounts(settings))


def program_accounts(settings: Settings) -> dict[str, tuple[str, str]]:
    """program id -> (channel secret, access token) of each program with its own LINE account."""
    try:
        catalog = load_programs(settings)
    except ProgramError:
        return {}
    return {p.id: creds for p in catalog if "line" in p.channels and (creds := catalog.line_credentials(p))}


def quick_reply(options: list[Option], row_id: int, page: int = 0, links: list[Link] | None = None
                ) -> QuickReply | None:
    """At most 13 items: 12 options and 「次へ」 when there are more (a postback the adapter answers). Links
    (the LIFF hearing form) come first as URI buttons, which LINE opens inside the app."""
    if links:
        items = [QuickReplyItem(action=URIAction(label=_label(link.label), uri=link.url)) for link in links[:3]]
        rest = quick_reply(options, row_id, page)
        return QuickReply(items=items + list(rest.items if rest else [])[: QUICK_REPLY_MAX - len(items)])
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
        token = settings.line.channel_access_token
        #: the general account's configuration, and each program's (a row says which program it is for)
        self.configuration = (Configuration(host=settings.line.api_url, access_token=token.get_secret_value())
                              if token else None)
        self.programs = {pid: Configuration(host=settings.line.api_url, access_token=access)
                         for pid, (_, access) in program_accounts(settings).items()}
        # Messages that come from no conversation (a visit to confirm) and carry no program: the general
        # account, else the default program's, else the only one there is.
        if self.configuration is None and self.programs:

            default = load_programs(settings).default.id
            self.configuration = self.programs.get(default) or next(iter(self.programs.values()))

    def send(self, row: OutboundMessage, replies: list[Reply]) -> None:
        context = (row.payload or {}).get("context") or {}
        configuration = self.programs.get(context.get("program") or "") or self.configuration
        if configuration is None:
            raise PermanentSendError(f"line: no account for program {context.get('program')!r}")
        page = int(context.get("page", 0))
        messages = platform_messages(replies, TEXT_LIMIT)
        start = already_sent(row)
        token = context.get("reply_token")
        fresh = token and start == 0 and time.time() - float(context.get("received_at", 0)) < REPLY_TOKEN_TTL_S
        while start < len(messages):
            batch = messages[start: start + MESSAGES_PER_CALL]
            line_messages = [TextMessage(text=text, quickReply=quick_reply(reply.options, row.id, page, reply.links)
                                         if reply else None) for text, reply in batch]
            if fresh:
                fresh = False
                try:
                    self._call(configuration, lambda api, line_messages=line_messages: api.reply_message(
                        ReplyMessageRequest(replyToken=token, messages=line_messages)))
                except PermanentSendError:  # token expired or used: push instead
                    log.info("reply token rejected; pushing", extra={"row": row.id})
                    continue
            else:
                self._call(configuration, lambda api, line_messages=line_messages: api.push_message(
                    PushMessageRequest(to=row.external_user_id, messages=line_messages)))
            start += len(batch)
            mark_progress(row, start)

    @staticmethod
    def _call(configuration: Configuration, call: Any) -> None:
        with ApiClient(configuration) as client:
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


def to_inbound(event: Any, program: str | None = None) -> InboundMessage | None:
    user_id = getattr(event.source, "user_id", None)
    if not user_id:
        return None  # group/room events without a user: not a conversation we hold
    context = {"reply_token": getattr(event, "reply_token", None), "received_at": time.time()}
    # Two programs' accounts may deliver the same webhook event id shape: keep them apart.
    event_id = f"{program}:{event.webhook_event_id}" if program else event.webhook_event_id
    common: dict[str, Any] = {"channel": CHANNEL, "external_user_id": user_id, "program": program,
                              "platform_message_id": event_id, "reply_context": context}
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


def next_page(services: Services, event: Any, program: str | None = None) -> None:
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
              {"reply_token": event.reply_token, "received_at": time.time(), "page": int(page or 1)}
              | ({"program": program} if program else {}))


#: Set on a stored event that came in on a program's own webhook (one inbox holds every account's events).
PROGRAM_KEY = "_madoguchi_program"


def mount(api: FastAPI, settings: Settings, services: Services, runtime: ChannelRuntime) -> None:
    """`/line/webhook` for the general account (LINE_CHANNEL_*: users may ask about any program), and
    `/line/<program>/webhook` for each program's own account, each verified with its own channel secret:
    an event signed with another program's secret is refused (401). Every account's events are stored before
    the 200 in one inbox, with the program they came in for."""

    def process(events: list[Any], program: str | None) -> None:
        for event in events:
            if isinstance(event, PostbackEvent) and event.postback.data.startswith(PAGE_PREFIX):
                next_page(services, event, program)
                runtime.worker.kick()
                continue
            message = to_inbound(event, program)
            if message is not None:
                runtime.receive(message)

    def process_stored(raw: dict[str, Any]) -> None:
        raw = dict(raw)
        program = raw.pop(PROGRAM_KEY, None)
        try:
            event = Event.from_dict(raw)
        except ValueError:
            return  # an event type the SDK does not know: nothing to answer
        process([event], program)

    inbox = WebhookInbox(services, CHANNEL, process_stored)
    runtime.inboxes.append(inbox)
    if settings.line.channel_secret is not None and settings.line.channel_access_token is not None:
        _mount_one(api, "/line/webhook", settings.line.channel_secret.get_secret_value(), None, inbox)
    for program_id, (secret, _) in program_accounts(settings).items():
        _mount_one(api, f"/line/{program_id}/webhook", secret, program_id, inbox)


def _mount_one(api: FastAPI, path: str, secret: str, program: str | None, inbox: WebhookInbox) -> None:
    parser = WebhookParser(secret)

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
        events = [(f"{program}:{event_key(e, 'webhookEventId')}" if program else event_key(e, "webhookEventId"),
                   {**e, PROGRAM_KEY: program} if program else e) for e in raw if isinstance(e, dict)]
        ids = await inbox.accept(events)
        background.add_task(inbox.process_ids, ids)
        return JSONResponse({"ok": True})

    api.add_api_route(path, line_webhook, methods=["POST"], include_in_schema=False)
