"""Telegram: webhook (secret-token header verified) or polling, via python-telegram-bot.

Updates become `InboundMessage`s: text (including `/start CODE` deep links
for account linking), location messages for check-in, and inline-keyboard
presses. Telegram limits `callback_data` to 64 bytes, so a button carries
`o:<outbox row>:<index>` and the press is resolved against the stored
reply. The same `update_id` delivered twice is stored once (engine).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from datetime import UTC, datetime
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from bot.messages import InboundMessage, Location, Reply
from bot.outbox import replies_of
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
from bot.messages import Attachment

log = logging.getLogger(__name__)

CHANNEL = "telegram"
TEXT_LIMIT = 4096
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def is_configured(settings: Settings) -> bool:
    """The general bot (MADOGUCHI_TELEGRAM__BOT_TOKEN) or any program's own bot has credentials."""
    return settings.telegram.bot_token is not None or bool(program_bots(settings))


def program_bots(settings: Settings) -> dict[str, tuple[str, str]]:
    """program id -> (bot token, webhook secret token) of each program with its own bot."""
    try:
        catalog = load_programs(settings)
    except ProgramError:
        return {}
    return {p.id: creds for p in catalog if "telegram" in p.channels and (creds := catalog.telegram_credentials(p))}


def make_bot(settings: Settings, token: str | None = None) -> Bot:
    if token is None:
        assert settings.telegram.bot_token is not None
        token = settings.telegram.bot_token.get_secret_value()
    return Bot(token, base_url=settings.telegram.api_url, request=HTTPXRequest(connection_pool_size=4))


def keyboard(row_id: int, reply: Reply | None) -> InlineKeyboardMarkup | None:
    if reply is None or not (reply.options or reply.links):
        return None
    buttons = [[InlineKeyboardButton(option.label[:64], callback_data=f"o:{row_id}:{index}")]
               for index, option in enumerate(reply.options)]
    buttons += [[InlineKeyboardButton(link.label[:64], url=link.url)] for link in reply.links]
    return InlineKeyboardMarkup(buttons)


class TelegramSender:
    """Sends with one long-lived event loop on the delivery thread (python-telegram-bot is async)."""
    channel = CHANNEL

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._bots: dict[str, Bot] = {}  # "" = the general bot, else a program's own
        self._tokens = {pid: token for pid, (token, _) in program_bots(settings).items()}
        self._lock = threading.Lock()

    def _run(self, coroutine: Any) -> Any:
        with self._lock:
            return self._loop.run_until_complete(coroutine)

    async def _bot_ready(self, program: str = "") -> Bot:
        key = program if program in self._tokens else ""
        if key == "" and self.settings.telegram.bot_token is None and self._tokens:
            key = next(iter(self._tokens))  # no general bot: the (first) program bot there is
        if key not in self._bots:
            bot = make_bot(self.settings, self._tokens.get(key))
            await bot.initialize()
            self._bots[key] = bot
        return self._bots[key]

    def send(self, row: OutboundMessage, replies: list[Reply]) -> None:
        context = (row.payload or {}).get("context") or {}
        chat_id = context.get("chat_id") or row.external_user_id
        program = str(context.get("program") or "")
        messages = platform_messages(replies, TEXT_LIMIT)
        for index in range(already_sent(row), len(messages)):
            text, reply = messages[index]
            try:
                self._run(self._send(chat_id, text, keyboard(row.id, reply), program))
            except RetryAfter as error:
                retry_after = error.retry_after
                seconds = retry_after.total_seconds() if hasattr(retry_after, "total_seconds") else float(retry_after)
                raise TransientSendError("telegram 429", seconds) from error
            except (Forbidden, BadRequest) as error:
                raise PermanentSendError(f"telegram: {error.message}") from error
            except NetworkError as error:  # includes timeouts and 5xx
                raise TransientSendError(f"telegram: {error.message}") from error
            mark_progress(row, index + 1)

    async def _send(self, chat_id: str, text: str, markup: InlineKeyboardMarkup | None, program: str = "") -> None:
        bot = await self._bot_ready(program)
        await bot.send_message(chat_id=chat_id, text=text, reply_markup=markup)

    def answer_callback(self, callback_id: str, program: str = "") -> None:
        """Stop the button's spinner; cosmetic, so failures are only logged."""
        try:
            self._run(self._answer(callback_id, program))
        except TelegramError:
            log.warning("answerCallbackQuery failed")

    async def _answer(self, callback_id: str, program: str = "") -> None:
        bot = await self._bot_ready(program)
        await bot.answer_callback_query(callback_id)


def resolve_button(session: Session, data: str) -> str | None:
    """'o:<row>:<index>' -> the option value the button stood for."""
    parts = data.split(":")
    if len(parts) != 3 or parts[0] != "o" or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    row = session.get(OutboundMessage, int(parts[1]))
    if row is None or row.channel != CHANNEL:
        return None
    options = [option for reply in replies_of(row) for option in reply.options]
    index = int(parts[2])
    return options[index].value if index < len(options) else None


def to_inbound(services: Services, update: Update, program: str | None = None) -> InboundMessage | None:
    """Our message for a Telegram update, or None for updates we do not handle (edits, joins ...)."""
    message = _to_inbound(services, update)
    if message is not None and program:
        # update ids count per bot: two programs' bots must not de-duplicate each other's updates
        message = message.model_copy(update={"program": program,
                                             "platform_message_id": f"{program}:{message.platform_message_id}"})
    return message


def _to_inbound(services: Services, update: Update) -> InboundMessage | None:
    if update.callback_query is not None:
        query = update.callback_query
        with services.db.session() as session:
            choice = resolve_button(session, query.data or "")
        chat = query.message.chat.id if query.message else query.from_user.id
        return InboundMessage(channel=CHANNEL, external_user_id=str(query.from_user.id), choice=choice or "?",
                              platform_message_id=f"update:{update.update_id}",
                              display_name=query.from_user.full_name, reply_context={"chat_id": str(chat)})
    message = update.message
    if message is None or message.from_user is None:
        return None
    location = Location(lat=message.location.latitude, lon=message.location.longitude) if message.location else None
    if message.text is None and location is None:

        kinds = [kind for kind in ("photo", "document", "sticker", "voice", "video") if getattr(message, kind, None)]
        return InboundMessage(channel=CHANNEL, external_user_id=str(message.from_user.id),
                              attachments=[Attachment(kind=kinds[0] if kinds else "other")],
                              platform_message_id=f"update:{update.update_id}",
                              reply_context={"chat_id": str(message.chat.id)})
    return InboundMessage(channel=CHANNEL, external_user_id=str(message.from_user.id), text=message.text,
                          location=location, platform_message_id=f"update:{update.update_id}",
                          timestamp=message.date or datetime.now(UTC), display_name=message.from_user.full_name,
                          reply_context={"chat_id": str(message.chat.id)})


#: Set on a stored update that came in on a program's own webhook (one inbox holds every bot's updates).
PROGRAM_KEY = "_madoguchi_program"


def mount(api: FastAPI, settings: Settings, services: Services, runtime: ChannelRuntime,
          sender: TelegramSender) -> None:
    """`/telegram/webhook` for the general bot, `/telegram/<program>/webhook` for each program's own bot,
    each checked against its own secret token; every bot's updates are stored before the 200 in one inbox,
    with the program they came in for."""
    bots: dict[str, Bot] = {}
    if settings.telegram.bot_token is not None:
        bots[""] = make_bot(settings)
    for program_id, (token, _) in program_bots(settings).items():
        bots[program_id] = make_bot(settings, token)

    def process(data: dict[str, Any]) -> None:
        data = dict(data)
        program = data.pop(PROGRAM_KEY, None)
        bot = bots.get(program or "") or next(iter(bots.values()))
        update = Update.de_json(data, bot)
        if update is None:
            return
        message = to_inbound(services, update, program)
        if message is not None:
            runtime.receive(message)
        if update.callback_query is not None:
            sender.answer_callback(update.callback_query.id, program or "")

    inbox = WebhookInbox(services, CHANNEL, process)
    runtime.inboxes.append(inbox)
    if settings.telegram.bot_token is not None:
        secret = settings.telegram.secret_token.get_secret_value() if settings.telegram.secret_token else ""
        _mount_one(api, "/telegram/webhook", secret, None, inbox)
    for program_id, (_, secret) in program_bots(settings).items():
        _mount_one(api, f"/telegram/{program_id}/webhook", secret, program_id, inbox)


def _mount_one(api: FastAPI, path: str, secret: str, program: str | None, inbox: WebhookInbox) -> None:
    async def telegram_webhook(request: Request, background: BackgroundTasks) -> JSONResponse:
        given = request.headers.get(SECRET_HEADER, "")
        if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
            return JSONResponse({"error": "forbidden", "message": "認証に失敗しました。"}, status_code=403)
        try:
            data = await request.json()
        except ValueError:
            return JSONResponse({"error": "malformed_json", "message": "JSON の形式が正しくありません。"},
                                status_code=400)
        if not isinstance(data, dict) or "update_id" not in data:
            return JSONResponse({"error": "invalid_update", "message": "更新データが正しくありません。"},
                                status_code=400)
        # Stored (committed) before Telegram gets its 200; processed from the store. Update ids count per
        # bot, so a program's are kept apart from the general bot's.
        key = event_key(data, "update_id")
        stored = (f"{program}:{key}", {**data, PROGRAM_KEY: program}) if program else (key, data)
        ids = await inbox.accept([stored])
        background.add_task(inbox.process_ids, ids)
        return JSONResponse({"ok": True})

    api.add_api_route(path, telegram_webhook, methods=["POST"], include_in_schema=False)


def polling_bots(settings: Settings) -> dict[str, str]:
    """Whom `channels telegram-polling` polls: "" -> the general bot's token, program id -> each program's own
    bot's (a program whose bot is the general one is served by the general poller: one poller per token)."""
    bots: dict[str, str] = {}
    if settings.telegram.bot_token is not None:
        bots[""] = settings.telegram.bot_token.get_secret_value()
    for program_id, (token, _) in program_bots(settings).items():
        if token not in bots.values():
            bots[program_id] = token
    return bots


def run_polling(services: Services, runtime: ChannelRuntime, stop: threading.Event | None = None,
                timeout: int = 30) -> None:
    """Local use without a public URL: long-poll getUpdates of every configured bot (the general one and each
    program's own, one poller per bot token) and feed the same pipeline, each update with its bot's program.
    Runs until `stop` is set (never, from the command: Ctrl-C ends it)."""
    settings = services.settings

    async def poll(program: str, token: str) -> None:
        async with make_bot(settings, token) as bot:
            await bot.delete_webhook()
            offset = 0
            while stop is None or not stop.is_set():
                for update in await bot.get_updates(offset=offset, timeout=timeout):
                    offset = update.update_id + 1
                    message = to_inbound(services, update, program or None)
                    if message is not None:
                        await asyncio.to_thread(runtime.receive, message)
                    if update.callback_query is not None:
                        await bot.answer_callback_query(update.callback_query.id)

    async def loop() -> None:
        await asyncio.gather(*(poll(program, token) for program, token in polling_bots(settings).items()))

    asyncio.run(loop())
